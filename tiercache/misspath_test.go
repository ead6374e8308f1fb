package tiercache

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// missCost is what a run of misses cost its redis-server.
type missCost struct {
	misses  int
	cmdUSec float64 // INFO commandstats usec of the commands the client sent, each counted once
	execOwn float64 // of cmdUSec, EXEC's own: its usec less that of the commands it ran
	cpuUSec float64 // INFO cpu: the server process's user and system time
	wall    time.Duration
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct{ calls, usec float64 }

// redisCounters reads INFO commandstats and INFO cpu (user and system
// time, in µs).
func redisCounters(t testing.TB, rdb *redis.Client) (map[string]cmdStat, float64) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]cmdStat{}
	var cpu float64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case !ok:
		case name == "used_cpu_sys" || name == "used_cpu_user":
			s, _ := strconv.ParseFloat(rest, 64)
			cpu += s * 1e6
		case strings.HasPrefix(name, "cmdstat_"):
			var st cmdStat
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					st.calls, _ = strconv.ParseFloat(v, 64)
				case "usec":
					st.usec, _ = strconv.ParseFloat(v, 64)
				}
			}
			cmds[strings.TrimPrefix(name, "cmdstat_")] = st
		}
	}
	return cmds, cpu
}

// A command that runs inside EVALSHA or EXEC is counted twice by INFO
// commandstats: under its own name and in the usec of the command that
// ran it (measured on Redis 7.0: a MULTI of 300 SORT and 300 SET had EXEC
// at 1288 µs against 1173 µs for the 600). A step's commands are told
// apart by what the step sends: the scripted path sends nothing but
// EVALSHA, so every other command in its steps ran inside a script; the
// plain lease sends no EXEC, so nothing in it is nested; the plain fill
// runs SET and DEL only inside its EXEC (and only there: the lease's SET
// NX is in the other step), so EXEC's own time is its usec less theirs.

// stepUSec is the commandstats usec of one step's commands (the difference
// of two readings), each counted once; execOwn is EXEC's own share.
func stepUSec(before, after map[string]cmdStat, scripted, fill bool) (top, execOwn float64) {
	var nested float64
	for cmd, u := range after {
		d := u.usec - before[cmd].usec
		switch {
		case strings.HasPrefix(cmd, "info"), strings.HasPrefix(cmd, "client"), cmd == "hello", cmd == "ping":
			// the meter's and the connections' own
		case cmd == "evalsha" || cmd == "eval" || cmd == "script|load":
			top += d
		case scripted:
			// ran inside a script: its usec is in EVALSHA's
		case fill && (cmd == "set" || cmd == "del"):
			nested += d
		default:
			top += d
			if cmd == "exec" {
				execOwn += d
			}
		}
	}
	return top - nested, execOwn - nested
}

// runMisses runs n misses of fresh keys through l: lease, then fill with a
// constant value (the cheapest loader), each as Cache.Get's miss path does;
// keep: each fill also writes the value's fail-safe copy. With account, it
// reads INFO commandstats around each step to count each command once (see
// stepUSec); its process CPU and wall time then include those readings and
// are not reported.
func runMisses(t testing.TB, l *l2, meter *redis.Client, prefix string, n int, account, keep bool) missCost {
	t.Helper()
	payload := []byte(strings.Repeat("v", 200))
	scripted := !l.opt.ScriptFreeMiss
	c := missCost{misses: n}
	before, cpu0 := redisCounters(t, meter)
	start := time.Now()
	for i := range n {
		key := prefix + strconv.Itoa(i)
		_, found, lease, _ := l.lease(context.Background(), key, true)
		if found || lease == "" {
			t.Fatalf("%s: found %v, lease %q: want a lease on a cold key", key, found, lease)
		}
		var leased map[string]cmdStat
		if account {
			leased, _ = redisCounters(t, meter)
			top, _ := stepUSec(before, leased, scripted, false)
			c.cmdUSec += top
		}
		if !l.fill(context.Background(), l2Fill{key: key, lease: lease, raw: payload, ttl: time.Minute, keep: keep}) {
			t.Fatalf("%s: fill under our own lease was refused (%d Redis errors so far)", key, l.stats.l2Errors.Load())
		}
		if account {
			before, _ = redisCounters(t, meter)
			top, own := stepUSec(leased, before, scripted, true)
			c.cmdUSec += top
			c.execOwn += own
		}
	}
	if !account {
		c.wall = time.Since(start)
		_, cpu1 := redisCounters(t, meter)
		c.cpuUSec = cpu1 - cpu0
	}
	return c
}

// perMiss is c's figures per miss: commandstats usec and EXEC's own share
// of it, process CPU usec, wall µs.
func (c missCost) perMiss() (cmd, execOwn, cpu, wall float64) {
	n := float64(c.misses)
	return c.cmdUSec / n, c.execOwn / n, c.cpuUSec / n, float64(c.wall.Microseconds()) / n
}

func (c *missCost) add(o missCost) {
	c.misses += o.misses
	c.cmdUSec += o.cmdUSec
	c.execOwn += o.execOwn
	c.cpuUSec += o.cpuUSec
	c.wall += o.wall
}

// missRun is the misses per round: TIERCACHE_MISS_RUN, default 300.
func missRun(t *testing.T) int {
	t.Helper()
	s := os.Getenv("TIERCACHE_MISS_RUN")
	if s == "" {
		return 300
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("TIERCACHE_MISS_RUN=%q: want a positive count", s)
	}
	return n
}

// TestMissPathRedisCPU measures the Redis CPU of the miss path (lease and
// fill) on a redis-server of its own, where nothing else runs: the Lua
// scripts against the plain commands and WATCH transaction of
// Options.ScriptFreeMiss (docs/design.md §3.4), in alternating rounds of
// one run: 4 rounds each for process CPU and wall time, then 2 each for
// INFO commandstats, read around every step (see stepUSec).
// TIERCACHE_MISS_RUN sets the misses per round (default 300); the README
// quotes a run of 5000. It asserts only that the plain path costs Redis
// less command time, which holds by a wide margin on a busy machine.
func TestMissPathRedisCPU(t *testing.T) {
	n := missRun(t)
	srv := startRedisServer(t)
	// a busy machine must not turn a slow answer into a refused fill: the
	// clients and the l2s wait up to 5s
	rdb := dialRedis(t, &redis.Options{Addr: srv.addr(), ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	meter := srv.client(t)
	paths := map[bool]*l2{}
	for _, lua := range []bool{true, false} {
		opt, err := Options{Namespace: "miss", L2Timeout: 5 * time.Second, LeaseWait: 5 * time.Second}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		opt.ScriptFreeMiss = !lua
		paths[lua] = newL2(rdb, &opt, &stats{})
	}
	runMisses(t, paths[true], meter, "warm-lua-", 50, false, false) // loads the scripts
	runMisses(t, paths[false], meter, "warm-plain-", 50, false, false)
	var lua, plain missCost
	for r := range 4 {
		lua.add(runMisses(t, paths[true], meter, fmt.Sprintf("lua-%d-", r), n, false, false))
		plain.add(runMisses(t, paths[false], meter, fmt.Sprintf("plain-%d-", r), n, false, false))
	}
	var luaCmd, plainCmd missCost
	for r := range 2 {
		luaCmd.add(runMisses(t, paths[true], meter, fmt.Sprintf("lua-acct-%d-", r), n, true, false))
		plainCmd.add(runMisses(t, paths[false], meter, fmt.Sprintf("plain-acct-%d-", r), n, true, false))
	}
	report := func(name string, timed, acct missCost) (cmd, cpu, wall float64) {
		cmd, own, _, _ := acct.perMiss()
		_, _, cpu, wall = timed.perMiss()
		t.Logf("%s: commandstats %.2f µs/miss (EXEC's own %.2f), process CPU %.2f µs/miss, wall %.1f µs/miss", name, cmd, own, cpu, wall)
		return cmd, cpu, wall
	}
	lc, lp, lw := report("Lua   (EVALSHA lease + fill)", lua, luaCmd)
	pc, pp, pw := report("plain (ScriptFreeMiss)      ", plain, plainCmd)
	t.Logf("plain / Lua: commandstats %.2f, process CPU %.2f, wall %.2f", pc/lc, pp/lp, pw/lw)
	if pc >= lc {
		t.Fatalf("the plain miss path cost Redis %.2f µs of commands per miss against %.2f µs for the scripts", pc, lc)
	}
}

// TestFailSafeCopyRedisCost measures what writing each fill's fail-safe
// copy in Redis (Options.FailSafeL2TTL, docs/design.md §3.16) adds to the
// miss path's Redis cost, on a redis-server of its own: misses with and
// without the copy, in alternating rounds of one run, with the scripts
// and with the WATCH transaction. TIERCACHE_MISS_RUN sets the misses per
// round (default 300); the README quotes a run of 5000. It asserts that
// every fill wrote its copy, with the copy's TTL, and none without.
func TestFailSafeCopyRedisCost(t *testing.T) {
	n := missRun(t)
	srv := startRedisServer(t)
	rdb, meter := srv.client(t), srv.client(t)
	for _, lua := range []bool{true, false} {
		opt, err := Options{Namespace: "copy", L2Timeout: 5 * time.Second, LeaseWait: 5 * time.Second, FailSafeL2TTL: 10 * time.Minute}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		opt.ScriptFreeMiss = !lua
		l := newL2(rdb, &opt, &stats{})
		name := map[bool]string{true: "scripts", false: "transaction"}[lua]
		runMisses(t, l, meter, name+"-warm-", 50, false, true)
		var plain, kept, plainCmd, keptCmd missCost
		for r := range 4 {
			plain.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-plain-", name, r), n, false, false))
			kept.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-kept-", name, r), n, false, true))
			plainCmd.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-plain-acct-", name, r), n, true, false))
			keptCmd.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-kept-acct-", name, r), n, true, true))
		}
		t.Logf("%-11s with / without copy: commandstats %.2f (each command counted once), process CPU %.2f, wall %.2f", name,
			keptCmd.cmdUSec/plainCmd.cmdUSec, kept.cpuUSec/plain.cpuUSec, float64(kept.wall)/float64(plain.wall))
		for _, tc := range []struct {
			prefix string
			want   bool
		}{{name + "-0-kept-", true}, {name + "-0-plain-", false}} {
			for _, i := range []int{0, n - 1} {
				ttl, err := rdb.PTTL(context.Background(), l.copyKey(tc.prefix+strconv.Itoa(i))).Result()
				if err != nil || tc.want != (ttl > 9*time.Minute && ttl <= 10*time.Minute) || !tc.want && ttl >= 0 {
					t.Errorf("%s%d: copy PTTL %v, %v; want a copy %v (10m TTL)", tc.prefix, i, ttl, err, tc.want)
				}
			}
		}
	}
}
