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
	want := map[string]int64{"reads": 3, "fills_leases": 2, "invalidations": 1, "pings": 4}
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
