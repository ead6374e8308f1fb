package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/productcache/loadtest"
)

// Families are the command families of [CommandStats], in report order:
// reads, fills and leases (the miss path), invalidations and publishes
// (the write path), freshness pings, scripts and transactions, and the
// rest.
//
// Redis 7 counts a command that a script (EVAL, EVALSHA, FCALL) or an EXEC
// runs twice in INFO commandstats: under its own name, calls and usec, and
// inside the usec of the script or EXEC that ran it
// (TestCommandStatsCountScriptInnerCallsTwice). Which calls of, say, GET
// were a script's cannot be told apart from the counters, so the script
// and EXEC calls make a family of their own, "scripts_tx", whose time is
// the whole of what they ran, and the families a script or EXEC can run
// commands of are marked Nested: their figures include those commands
// again. The families are therefore not to be added up.
var Families = []string{"reads", "fills_leases", "invalidations", "pings", "scripts_tx", "other"}

// nestable are the families whose commands a script or EXEC may run.
var nestable = map[string]bool{"reads": true, "fills_leases": true, "invalidations": true, "other": true}

// family names the family of a Redis command (lower case, as INFO
// commandstats spells it, subcommands after a '|').
func family(cmd string) string {
	switch cmd {
	case "get", "mget":
		return "reads"
	case "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro", "exec":
		return "scripts_tx"
	case "set", "setnx", "psetex", "setex", "getdel", "getex", "multi", "watch", "unwatch",
		"pexpire", "expire", "pttl", "script|load":
		return "fills_leases"
	case "del", "unlink", "publish", "spublish", "incr", "incrby", "wait",
		"zadd", "zremrangebyscore": // the incarnation registry (docs/design.md §3.6)
		return "invalidations"
	case "ping":
		return "pings"
	}
	return "other"
}

// CmdStat is one line of INFO commandstats.
type CmdStat struct {
	Calls int64
	USec  float64
}

// ParseCommandStats reads an INFO commandstats answer:
// "cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...".
func ParseCommandStats(info string) (map[string]CmdStat, error) {
	out := map[string]CmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st CmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "calls":
				st.Calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.USec, err = strconv.ParseFloat(v, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("cluster: INFO commandstats %s: %w", name, err)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, nil
}

// CommandStats reads INFO commandstats of rdb.
func CommandStats(ctx context.Context, rdb *redis.Client) (map[string]CmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: INFO commandstats: %w", err)
	}
	return ParseCommandStats(info)
}

// ByFamily adds the difference after - before of every command into its
// family, in the order of [Families], and marks the families that count
// commands scripts and EXEC ran too (see Families). Nested is set from the
// family, not from the run: whether any GET of a run came from a script
// is not in the counters.
func ByFamily(before, after map[string]CmdStat) []loadtest.CommandFamily {
	sums := map[string]*loadtest.CommandFamily{}
	out := make([]loadtest.CommandFamily, len(Families))
	for i, name := range Families {
		out[i].Name = name
		out[i].Nested = nestable[name]
		sums[name] = &out[i]
	}
	for cmd, a := range after {
		b := before[cmd]
		f := sums[family(cmd)]
		f.Calls += a.Calls - b.Calls
		f.USec += a.USec - b.USec
	}
	return out
}

// RedisMeter is a [loadtest.RedisMeter] reading INFO commandstats of one
// Redis server.
type RedisMeter struct {
	rdb    *redis.Client
	before map[string]CmdStat
}

// NewRedisMeter connects to redisURL; Close releases the connection.
func NewRedisMeter(redisURL string) (*RedisMeter, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis meter: %w", err)
	}
	return &RedisMeter{rdb: redis.NewClient(opt)}, nil
}

// Begin implements [loadtest.RedisMeter].
func (m *RedisMeter) Begin(ctx context.Context) error {
	var err error
	m.before, err = CommandStats(ctx, m.rdb)
	return err
}

// End implements [loadtest.RedisMeter].
func (m *RedisMeter) End(ctx context.Context) ([]loadtest.CommandFamily, error) {
	after, err := CommandStats(ctx, m.rdb)
	if err != nil {
		return nil, err
	}
	return ByFamily(m.before, after), nil
}

// Close closes the connection.
func (m *RedisMeter) Close() error { return m.rdb.Close() }

var _ loadtest.RedisMeter = (*RedisMeter)(nil)
