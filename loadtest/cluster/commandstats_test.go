package cluster_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/loadtest/cluster"
)

// TestRedisMeterSplitsByFamily runs known commands on a private
// redis-server between the meter's readings and finds each in its family.
func TestRedisMeterSplitsByFamily(t *testing.T) {
	srv := testenv.NewRedisServer(t)
	srv.Start()
	ctx := context.Background()
	m, err := cluster.NewRedisMeter(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	if err := m.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"reads": 3, "fills_leases": 1, "invalidations": 1, "pings": 4, "scripts_tx": 1}
	for range 3 {
		rdb.Get(ctx, "k")
	}
	rdb.Set(ctx, "k", "v", 0)
	rdb.Eval(ctx, "return 1", nil)
	rdb.Del(ctx, "k")
	for range 4 {
		rdb.Ping(ctx)
	}
	fams, err := m.End(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Redis counts whole microseconds per command, so four PINGs can add
	// up to 0µs: each family must have its calls and no negative time, and
	// the run as a whole (an EVAL among it) some time.
	var total float64
	for i, f := range fams {
		if f.Name != cluster.Families[i] {
			t.Errorf("family %d is %s, want %s", i, f.Name, cluster.Families[i])
		}
		if n, ok := want[f.Name]; ok && (f.Calls != n || f.USec < 0) {
			t.Errorf("%s: got %d calls, %.0fµs, want %d calls", f.Name, f.Calls, f.USec, n)
		}
		total += f.USec
	}
	if total <= 0 {
		t.Errorf("the commands took %.0fµs in all, want some time", total)
	}
}

// TestCommandStatsCountScriptInnerCallsTwice pins down what ByFamily
// relies on, on the redis-server here: a command a script or an EXEC runs
// is counted under its own name, and its time inside the script's or
// EXEC's as well.
func TestCommandStatsCountScriptInnerCallsTwice(t *testing.T) {
	srv := testenv.NewRedisServer(t)
	srv.Start()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	before, err := cluster.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Eval(ctx, "for i = 1, 100 do redis.call('SET', KEYS[1], i) end return 1", []string{"k"}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", "v", 0)
		p.Get(ctx, "k")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after, err := cluster.CommandStats(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	calls := func(cmd string) int64 { return after[cmd].Calls - before[cmd].Calls }
	if calls("set") != 101 || calls("get") != 1 || calls("eval") != 1 || calls("exec") != 1 {
		t.Fatalf("calls: set %d, get %d, eval %d, exec %d; want 101, 1, 1, 1 (inner calls under their own names)",
			calls("set"), calls("get"), calls("eval"), calls("exec"))
	}
	// The script's time holds its 100 SETs': at least their usec (whole
	// microseconds, rounded per call, so compared with some slack).
	set := after["set"].USec - before["set"].USec
	eval := after["eval"].USec - before["eval"].USec
	if eval+2 < set*100/101 {
		t.Fatalf("EVAL took %.0fµs, its SETs %.0fµs: the script's time should include them", eval, set)
	}
}

// TestByFamilyCannedInfo: ByFamily on a canned INFO commandstats answer
// puts scripts and EXEC in scripts_tx and marks the families their inner
// commands can be counted in.
func TestByFamilyCannedInfo(t *testing.T) {
	before, err := cluster.ParseCommandStats("# Commandstats\r\ncmdstat_get:calls=10,usec=20,usec_per_call=2.00\r\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := cluster.ParseCommandStats(`# Commandstats
cmdstat_get:calls=14,usec=28,usec_per_call=2.00,rejected_calls=0,failed_calls=0
cmdstat_set:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0
cmdstat_evalsha:calls=2,usec=50,usec_per_call=25.00,rejected_calls=0,failed_calls=0
cmdstat_exec:calls=1,usec=7,usec_per_call=7.00,rejected_calls=0,failed_calls=0
cmdstat_multi:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0
cmdstat_spublish:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0
cmdstat_ping:calls=5,usec=3,usec_per_call=0.60,rejected_calls=0,failed_calls=0
cmdstat_client|list:calls=1,usec=6,usec_per_call=6.00,rejected_calls=0,failed_calls=0
`)
	if err != nil {
		t.Fatal(err)
	}
	type fam struct {
		calls  int64
		usec   float64
		nested bool
	}
	want := map[string]fam{
		"reads": {4, 8, true}, "fills_leases": {4, 10, true}, "invalidations": {2, 4, true},
		"pings": {5, 3, false}, "scripts_tx": {3, 57, false}, "other": {1, 6, true},
	}
	for _, f := range cluster.ByFamily(before, after) {
		if w := want[f.Name]; f.Calls != w.calls || f.USec != w.usec || f.Nested != w.nested {
			t.Errorf("%s: got %d calls, %.0fµs, nested %v; want %+v", f.Name, f.Calls, f.USec, f.Nested, w)
		}
	}
}
