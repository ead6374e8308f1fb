package tiercache

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// refreshOptions make every value read with less than half of its hour
// left refresh: a seeded value with 20 minutes left is in the window
// however slowly the test runs. L2Timeout is generous: a refresh whose lease script times out rightly
// refreshes nothing (a later read tries again), which on a starved machine
// (the default 100 ms passed under two busy loops and -race) left these
// tests waiting for a load that never started.
func refreshOptions(ns string) Options {
	return Options{Namespace: ns, L2TTL: time.Hour, RefreshAhead: 0.5, L2Timeout: 5 * time.Second}
}

// seedInWindow stores v under key in L2 as a fill of an hour-long TTL
// would have, 40 minutes ago.
func seedInWindow(t *testing.T, rdb *redis.Client, c *Cache[int], key string, v int) {
	t.Helper()
	left := 20 * time.Minute
	st := l2Stamp{expires: time.Now().Add(left).UnixMilli(), ttl: time.Hour.Milliseconds()}
	raw := encodeL2(false, []byte(strconv.Itoa(v)), st)
	if err := rdb.Set(context.Background(), c.l2.valueKey(key), raw, left).Err(); err != nil {
		t.Fatal(err)
	}
}

// blockingLoader returns v from a load that signals started and then
// waits for release (or for its context to end, whose error it returns).
type blockingLoader struct {
	started, release chan struct{}
	calls            chan struct{} // one token per call
}

func newBlockingLoader() *blockingLoader {
	return &blockingLoader{started: make(chan struct{}, 10), release: make(chan struct{}), calls: make(chan struct{}, 10)}
}

func (b *blockingLoader) load(v func() int) LoadFunc[int] {
	return func(ctx context.Context) (int, error) {
		val := v() // read before the wait: a write may land while it blocks
		b.calls <- struct{}{}
		b.started <- struct{}{}
		select {
		case <-b.release:
			return val, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// refreshDone returns options whose refreshDone hook signals on the
// returned channel.
func withRefreshDone(opt Options) (Options, chan struct{}) {
	done := make(chan struct{}, 10)
	opt.hooks.refreshDone = func(string) { done <- struct{}{} }
	return opt, done
}

func TestEagerRefreshOneLoaderAcrossReplicas(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	optA, doneA := withRefreshDone(refreshOptions(ns))
	optB, doneB := withRefreshDone(refreshOptions(ns))
	a, b := newCache(t, rdb, optA), newCache(t, rdb, optB)
	seedInWindow(t, rdb, a, "k", 1)
	bl := newBlockingLoader()
	load := bl.load(func() int { return 2 })

	v, info, err := a.GetInfo(context.Background(), "k", load)
	if err != nil || v != 1 || info.Source != SourceL2 {
		t.Fatalf("A: Get = %d, %+v, %v; want the current value 1 from L2", v, info, err)
	}
	recv(t, bl.started, "A's background load") // Get returned while the loader is blocked
	if v, info, err := b.GetInfo(context.Background(), "k", load); err != nil || v != 1 || info.Source != SourceL2 {
		t.Fatalf("B: Get = %d, %+v, %v; want 1 from L2", v, info, err)
	}
	recv(t, doneB, "B's refresh attempt") // the lease is A's: B loads nothing
	close(bl.release)
	recv(t, doneA, "A's refresh")
	if n := len(bl.calls); n != 1 {
		t.Fatalf("loads = %d, want exactly 1 across both replicas", n)
	}
	if ra, rb := a.Stats().Refreshes, b.Stats().Refreshes; ra+rb != 1 {
		t.Fatalf("refreshes A=%d B=%d, want 1 in all", ra, rb)
	}
	pttl := rdb.PTTL(context.Background(), a.l2.valueKey("k")).Val()
	if pttl < 50*time.Minute {
		t.Fatalf("L2 TTL after refresh = %v, want it renewed to about an hour", pttl)
	}
	// A third replica reads the renewed value from L2, out of the window:
	// it starts nothing (Close waits for any refresh it started).
	c, err := New[int](rdb, nil, refreshOptions(ns))
	if err != nil {
		t.Fatal(err)
	}
	if v, info := mustGetLoad(t, c, "k", load); v != 2 || info.Source != SourceL2 {
		t.Fatalf("C after refresh: %d from %v, want the refreshed 2 from L2", v, info.Source)
	}
	if err := c.Close(); err != nil || len(bl.calls) != 1 {
		t.Fatalf("Close: %v; loads = %d after the refresh, want still 1", err, len(bl.calls))
	}
}

func mustGetLoad(t *testing.T, c *Cache[int], key string, load LoadFunc[int]) (int, Info) {
	t.Helper()
	v, info, err := c.GetInfo(context.Background(), key, load)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, info
}

// A write that commits while a refresh's load runs wins: its delete takes
// the refresh's lease, so the older value the load read is stored in
// neither tier.
func TestEagerRefreshRacingWriteIsFenced(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	opt, done := withRefreshDone(refreshOptions(ns))
	a := newCache(t, rdb, opt)
	waitReady(t, a)
	seedInWindow(t, rdb, a, "k", 1)
	src := newSource()
	src.set("k", 1)
	bl := newBlockingLoader()
	if v, _ := mustGetLoad(t, a, "k", bl.load(func() int { return src.get("k") })); v != 1 {
		t.Fatalf("Get = %d, want 1", v)
	}
	recv(t, bl.started, "the refresh's load") // it has read 1
	src.set("k", 2)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(bl.release)
	recv(t, done, "the refresh")
	if raw, err := rdb.Get(context.Background(), a.l2.valueKey("k")).Bytes(); !errors.Is(err, redis.Nil) {
		t.Fatalf("L2 after the racing write holds %q (err %v), want nothing", raw, err)
	}
	if st := a.Stats(); st.FencedL2Fills != 1 {
		t.Fatalf("FencedL2Fills = %d, want 1", st.FencedL2Fills)
	}
	if v, info := mustGet(t, a, "k", src); v != 2 || info.Source != SourceLoader {
		t.Fatalf("Get after the write = %d from %v, want 2 from the loader", v, info.Source)
	}
}

// Close cancels a refresh's load and waits for it to end.
func TestCloseCancelsRefresh(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	c, err := New[int](rdb, nil, refreshOptions(ns))
	if err != nil {
		t.Fatal(err)
	}
	seedInWindow(t, rdb, c, "k", 1)
	ended := make(chan error, 1)
	started := make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return 0, ctx.Err()
	}
	if _, err := c.Get(context.Background(), "k", load); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "the refresh's load")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("load ended with %v, want context.Canceled", err)
		}
	default:
		t.Fatal("Close returned before the refresh's load ended")
	}
	if raw, _ := rdb.Get(context.Background(), c.l2.valueKey("k")).Bytes(); raw == nil {
		t.Fatal("the cancelled refresh removed the old value; it must be left to expire")
	}
}

// With RefreshAhead negative, a read in the window starts nothing.
func TestNoRefreshWhenOff(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	opt := refreshOptions(ns)
	opt.RefreshAhead = -1
	c, err := New[int](rdb, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	seedInWindow(t, rdb, c, "k", 1)
	bl := newBlockingLoader()
	if v, _ := mustGetLoad(t, c, "k", bl.load(func() int { return 2 })); v != 1 {
		t.Fatalf("Get = %d, want 1", v)
	}
	if err := c.Close(); err != nil { // waits for any refresh
		t.Fatal(err)
	}
	if n, r := len(bl.calls), c.Stats().Refreshes; n != 0 || r != 0 {
		t.Fatalf("loads = %d, refreshes = %d with RefreshAhead off, want none", n, r)
	}
}

// An L1 hit past its entry's refresh time refreshes too, so a key that L1
// answers keeps its L2 value alive.
func TestEagerRefreshFromL1Hit(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	var clock atomic.Int64
	clock.Store(1)
	opt, done := withRefreshDone(refreshOptions(ns))
	opt.Standalone, opt.L1TTL = true, time.Hour
	opt.hooks.now = clock.Load
	c := newCache(t, rdb, opt)
	src := newSource()
	src.set("k", 1)
	if _, info := mustGet(t, c, "k", src); info.Source != SourceLoader || !info.L1Stored {
		t.Fatalf("first Get: %+v, want a load stored in L1", info)
	}
	src.set("k", 2) // unannounced, so only a refresh can bring it in
	// 40 minutes later, in L2 and on this replica's clock.
	rdb.PExpire(context.Background(), c.l2.valueKey("k"), 20*time.Minute)
	clock.Add(int64(40 * time.Minute))
	if v, info := mustGet(t, c, "k", src); v != 1 || info.Source != SourceL1 {
		t.Fatalf("Get in the window = %d from %v, want 1 from L1 at once", v, info.Source)
	}
	recv(t, done, "the refresh")
	if pttl := rdb.PTTL(context.Background(), c.l2.valueKey("k")).Val(); pttl < 50*time.Minute {
		t.Fatalf("L2 TTL = %v, want renewed", pttl)
	}
	if v, _ := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("Get after refresh = %d, want 2 (L1 replaced by the refresh)", v)
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("loads = %d, want 2", n)
	}
}

// BenchmarkRemainingTTL compares the two ways a hit can learn how much of
// its L2 TTL is left: the stamp in the value (a plain GET, 17 bytes more)
// against a PTTL pipelined with the GET, on the shared Redis.
func BenchmarkRemainingTTL(b *testing.B) {
	rdb := needRedis(b)
	ns := namespace(b, rdb)
	ctx := context.Background()
	key := ns + ":v:{bench}"
	val := encodeL2(false, make([]byte, 200), l2Stamp{expires: time.Now().Add(time.Hour).UnixMilli(), ttl: 3600000})
	if err := rdb.Set(ctx, key, val, time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	b.Run("stamp/GET", func(b *testing.B) {
		for range b.N {
			if err := rdb.Get(ctx, key).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET+PTTL", func(b *testing.B) {
		for range b.N {
			var get *redis.StringCmd
			var pttl *redis.DurationCmd
			if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				get, pttl = p.Get(ctx, key), p.PTTL(ctx, key)
				return nil
			}); err != nil || get.Err() != nil || pttl.Err() != nil {
				b.Fatal(err)
			}
		}
	})
}

// A read whose stamp puts it at the window's edge refreshes even though
// Redis, whose expiry the fill's SET set a little after the stamp, holds
// the value a little longer than the window.
func TestEagerRefreshAtWindowEdge(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	opt, done := withRefreshDone(refreshOptions(ns))
	c := newCache(t, rdb, opt)
	seedInWindow(t, rdb, c, "k", 1)
	rdb.PExpire(context.Background(), c.l2.valueKey("k"), 31*time.Minute) // the window is 30
	src := newSource()
	src.set("k", 2)
	mustGet(t, c, "k", src)
	recv(t, done, "the refresh")
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("loads = %d, want the refresh's 1", n)
	}
}

// A read in the window that finds every refresh slot taken starts none,
// and the next L1 hit of that key starts it once a slot is free.
func TestEagerRefreshRetriedWhenSlotsWereFull(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	opt, done := withRefreshDone(refreshOptions(ns))
	opt.Standalone = true
	c := newCache(t, rdb, opt)
	bl := newBlockingLoader()
	bl.started = make(chan struct{}, refreshSlots)
	bl.calls = make(chan struct{}, refreshSlots+1)
	for i := range refreshSlots {
		key := "busy" + strconv.Itoa(i)
		seedInWindow(t, rdb, c, key, 1)
		mustGetLoad(t, c, key, bl.load(func() int { return 2 }))
		recv(t, bl.started, "a busy refresh")
	}
	seedInWindow(t, rdb, c, "k", 1)
	src := newSource()
	src.set("k", 2)
	if v, info := mustGet(t, c, "k", src); v != 1 || info.Source != SourceL2 || !info.L1Stored {
		t.Fatalf("Get = %d, %+v; want 1 from L2, stored in L1", v, info)
	}
	close(bl.release)
	for range refreshSlots {
		recv(t, done, "a busy refresh to end")
	}
	if v, info := mustGet(t, c, "k", src); v != 1 || info.Source != SourceL1 {
		t.Fatalf("Get = %d from %v, want 1 from L1", v, info.Source)
	}
	recv(t, done, "the retried refresh")
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("loads of k = %d, want 1 (the retried refresh)", n)
	}
}
