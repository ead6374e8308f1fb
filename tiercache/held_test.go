package tiercache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// heldL2 is a script-free l2 on rdb for the held connection's tests.
func heldL2(t *testing.T, rdb *redis.Client) *l2 {
	t.Helper()
	opt, err := Options{Namespace: "held", ScriptFreeMiss: true, L2Timeout: 5 * time.Second,
		LeaseWait: 5 * time.Second, LeasePoll: time.Millisecond}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newL2(rdb, &opt, &stats{})
}

// TestHeldLeaseLeavesNoWatch has a script-free lease wait on
// another replica's, watching a lease that then changes, until the value
// appears: its connection goes back to a pool of two with no WATCH on it,
// so a transaction of the application's that gets it is not aborted by
// the cache's watch.
func TestHeldLeaseLeavesNoWatch(t *testing.T) {
	srv := startRedisServer(t)
	a := heldL2(t, dialRedis(t, &redis.Options{Addr: srv.addr(), PoolSize: 2})) // one held connection
	b := heldL2(t, srv.client(t))
	ctx := context.Background()
	_, _, tb, _ := b.lease(ctx, "k", true)
	if tb == "" {
		t.Fatal("b took no lease on a cold key")
	}
	type answer struct {
		found bool
		lease string
	}
	got := make(chan answer, 1)
	go func() {
		_, found, lease, _ := a.lease(ctx, "k", true)
		got <- answer{found, lease}
	}()
	eventually(t, 5*time.Second, "a waits on b's lease", func() bool { return a.stats.leaseWaits.Load() == 1 })
	if !b.fill(ctx, l2Fill{key: "k", lease: tb, raw: []byte("v"), ttl: time.Minute}) {
		t.Fatal("b's fill under its own lease was refused")
	}
	if ans := <-got; !ans.found || ans.lease != "" {
		t.Fatalf("a: found %v, lease %q; want the value b filled", ans.found, ans.lease)
	}
	if n := len(a.held.slots); n != 0 {
		t.Fatalf("a holds %d connections after its lease ended, want 0", n)
	}
	// The pool's two connections, the one a held among them: each runs a
	// transaction that a watch left on it would abort.
	for i, c := range []*redis.Conn{a.rdb.(*redis.Client).Conn(), a.rdb.(*redis.Client).Conn()} {
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "probe", i, 0)
			return nil
		}); err != nil {
			t.Fatalf("pooled connection %d: transaction: %v, want it run", i, err)
		}
	}
}

// rule 12 (and rule 4): a loader that panics ends no lease by a fill or a
// release; its held connection still goes back to the pool, so misses
// keep their held connections.
func TestPanickingLoaderGivesBackHeldConnection(t *testing.T) {
	srv := startRedisServer(t)
	rdb := dialRedis(t, &redis.Options{Addr: srv.addr(), PoolSize: 2}) // one held connection
	c := newCache(t, rdb, Options{Namespace: "held", ScriptFreeMiss: true})
	waitReady(t, c)
	_, err := c.Get(context.Background(), "k", func(context.Context) (int, error) { panic("loader") })
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get with a panicking loader: %v, want its error", err)
	}
	if n := len(c.l2.held.slots); n != 0 {
		t.Fatalf("%d connections still held after the panic, want 0", n)
	}
	c.l2.held.mu.Lock()
	defer c.l2.held.mu.Unlock()
	if n := len(c.l2.held.byToken); n != 0 {
		t.Fatalf("%d leases still filed after the panic, want 0", n)
	}
}

// rule 4: TestWriteBeforeLeaseWatchIsFenced lets a write and its
// invalidation run after a held lease's SET NX and before its WATCH (the
// hook splits that round trip in two): the GET of the lease after the
// WATCH finds the token gone, so the fill does not rely on the WATCH and
// L2 does not keep the value read before the write (docs/design.md §3.4).
func TestWriteBeforeLeaseWatchIsFenced(t *testing.T) {
	t.Parallel()
	writeAtHookIsFenced(t, func(h *hooks, pause func()) { h.beforeLeaseWatch = func(string) { pause() } })
}
