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
	misses   int
	topUSec  float64 // INFO commandstats usec of the commands the client sent
	execUSec float64 // EXEC's share of topUSec, which holds the SET and DEL it ran
	cpuUSec  float64 // INFO cpu: the server process's user and system time
	wall     time.Duration
}

// redisCounters reads INFO commandstats and INFO cpu.
func redisCounters(t testing.TB, rdb *redis.Client) (map[string]float64, float64) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	usec := map[string]float64{}
	var cpu float64
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case !ok:
		case name == "used_cpu_sys" || name == "used_cpu_user":
			s, _ := strconv.ParseFloat(rest, 64)
			cpu += s * 1e6
		case strings.HasPrefix(name, "cmdstat_"):
			for _, kv := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(kv, "usec="); ok {
					usec[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseFloat(v, 64)
				}
			}
		}
	}
	return usec, cpu
}

// runMisses runs n misses of fresh keys through l: lease, then fill with a
// constant value (the cheapest loader), each as Cache.Get's miss path does;
// keep: each fill also writes the value's fail-safe copy.
func runMisses(t testing.TB, l *l2, meter *redis.Client, prefix string, n int, keep bool) missCost {
	t.Helper()
	payload := []byte(strings.Repeat("v", 200))
	before, cpu0 := redisCounters(t, meter)
	start := time.Now()
	for i := range n {
		key := prefix + strconv.Itoa(i)
		_, found, lease, _ := l.lease(context.Background(), key)
		if found || lease == "" {
			t.Fatalf("%s: found %v, lease %q: want a lease on a cold key", key, found, lease)
		}
		if !l.fill(context.Background(), l2Fill{key: key, lease: lease, raw: payload, ttl: time.Minute, keep: keep}) {
			t.Fatalf("%s: fill under our own lease was refused", key)
		}
	}
	wall := time.Since(start)
	after, cpu1 := redisCounters(t, meter)
	c := missCost{misses: n, cpuUSec: cpu1 - cpu0, wall: wall}
	for cmd, u := range after {
		d := u - before[cmd]
		switch {
		case strings.HasPrefix(cmd, "info"), strings.HasPrefix(cmd, "client"), cmd == "hello", cmd == "ping":
			// the meter's and the connections' own
		case cmd == "evalsha" || cmd == "eval" || cmd == "script|load":
			c.topUSec += d
		case !l.opt.ScriptFreeMiss:
			// run inside a script: its usec is in EVALSHA's
		default:
			// EXEC's usec includes the SET and DEL it runs, which are
			// counted again on their own: topUSec counts both, so it
			// overstates the plain path by less than execUSec.
			c.topUSec += d
			if cmd == "exec" {
				c.execUSec += d
			}
		}
	}
	return c
}

func (c missCost) String() string {
	n := float64(c.misses)
	return fmt.Sprintf("commandstats %.2f µs/miss, process CPU %.2f µs/miss, wall %.1f µs/miss",
		c.topUSec/n, c.cpuUSec/n, float64(c.wall.Microseconds())/n)
}

func (c *missCost) add(o missCost) {
	c.misses += o.misses
	c.topUSec += o.topUSec
	c.execUSec += o.execUSec
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
// scripts it used to run against the plain commands and WATCH transaction
// it runs now (docs/design.md §3.4), in alternating rounds of one run.
// TIERCACHE_MISS_RUN sets the misses per round (default 300); the README
// quotes a run of 5000. It asserts only that the plain path costs Redis
// less, which holds by a wide margin on a busy machine.
func TestMissPathRedisCPU(t *testing.T) {
	n := missRun(t)
	srv := startRedisServer(t)
	rdb, meter := srv.client(t), srv.client(t)
	paths := map[bool]*l2{}
	for _, lua := range []bool{true, false} {
		// a busy machine must not turn a slow answer into a refused fill
		opt, err := Options{Namespace: "miss", L2Timeout: 5 * time.Second, LeaseWait: 5 * time.Second}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		opt.ScriptFreeMiss = !lua
		paths[lua] = newL2(rdb, &opt, &stats{})
	}
	runMisses(t, paths[true], meter, "warm-lua-", 50, false) // loads the scripts
	runMisses(t, paths[false], meter, "warm-plain-", 50, false)
	var lua, plain missCost
	for r := range 4 {
		lua.add(runMisses(t, paths[true], meter, fmt.Sprintf("lua-%d-", r), n, false))
		plain.add(runMisses(t, paths[false], meter, fmt.Sprintf("plain-%d-", r), n, false))
	}
	t.Logf("Lua   (EVALSHA lease + fill):            %v", lua)
	t.Logf("plain (SET NX+GET, WATCH+MGET, MULTI/EXEC):%v (at least %.2f: EXEC counted as nothing)",
		plain, (plain.topUSec-plain.execUSec)/float64(plain.misses))
	t.Logf("plain / Lua: commandstats %.2f, process CPU %.2f, wall %.2f",
		plain.topUSec/lua.topUSec, plain.cpuUSec/lua.cpuUSec, float64(plain.wall)/float64(lua.wall))
	if plain.topUSec >= lua.topUSec {
		t.Fatalf("the plain miss path cost Redis %.0f µs against %.0f µs for the scripts", plain.topUSec, lua.topUSec)
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
		runMisses(t, l, meter, name+"-warm-", 50, true)
		var plain, kept missCost
		for r := range 4 {
			plain.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-plain-", name, r), n, false))
			kept.add(runMisses(t, l, meter, fmt.Sprintf("%s-%d-kept-", name, r), n, true))
		}
		t.Logf("%-11s without copy: %v", name, plain)
		t.Logf("%-11s with copy:    %v", name, kept)
		t.Logf("%-11s with / without: commandstats %.2f, process CPU %.2f, wall %.2f", name,
			kept.topUSec/plain.topUSec, kept.cpuUSec/plain.cpuUSec, float64(kept.wall)/float64(plain.wall))
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
