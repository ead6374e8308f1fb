package tiercacheprom

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/tiercache"
)

func newCache(t *testing.T, rdb *redis.Client, opt tiercache.Options) *tiercache.Cache[string] {
	t.Helper()
	c, err := tiercache.New[string](rdb, nil, opt)
	if err != nil {
		t.Fatalf("tiercache.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually polls cond until it holds or the deadline passes. It is only for
// effects that cross a Redis connection (subscription confirmation, pub/sub
// delivery), which nothing in the test process can hand-shake with.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, within, what, cond)
}

func lagCount(s tiercache.Stats) uint64 {
	var n uint64
	for _, c := range s.LagCounts {
		n += c
	}
	return n
}

// TestCollectorWithRedis reads a tiered cache through two replicas sharing a
// real Redis: a miss, hits, and an invalidation from the other replica, whose
// lag lands in the histogram.
func TestCollectorWithRedis(t *testing.T) {
	rdb := testenv.Redis(t)
	ns := testenv.Namespace(t)
	a := newCache(t, rdb, tiercache.Options{Namespace: ns, ReplicaID: "a"})
	b := newCache(t, rdb, tiercache.Options{Namespace: ns, ReplicaID: "b"})
	eventually(t, 5*time.Second, "both subscriptions confirmed", func() bool { return a.Ready() && b.Ready() })

	ctx := context.Background()
	var loads atomic.Int64
	load := func(context.Context) (string, error) { loads.Add(1); return "widget", nil }
	// A miss (L1, L2, loader), then reads until three L1 hits. On a
	// starved machine a read may bypass L1 (the replica cannot prove it is
	// caught up, rule 13) and be an L2 hit instead, so the L1 and L2
	// counts are taken from the cache's own Stats below, and the rest
	// must be exact.
	for hits := 0; hits < 3; {
		v, info, err := a.GetInfo(ctx, "product:1", load)
		if err != nil || v != "widget" {
			t.Fatalf("Get: got %q, %v, want widget", v, err)
		}
		if info.Source == tiercache.SourceL1 {
			hits++
		}
	}
	if err := b.Invalidate(ctx, "product:1"); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	eventually(t, 5*time.Second, "replica a applied b's invalidation", func() bool {
		return lagCount(a.Stats()) == 1
	})

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a, Options{ConstLabels: prometheus.Labels{"replica": "a"}}))
	families := gather(t, reg)
	st := a.Stats()
	if st.L1Hits != 3 || st.L2Misses != 1 || st.L1Misses+st.L1BypassStale+st.L1BypassWaking+st.L1BypassDown == 0 {
		t.Fatalf("stats: L1 hits %d, L2 misses %d, L1 misses %d, bypasses %d+%d+%d; want 3, 1, and the first read a miss or a bypass",
			st.L1Hits, st.L2Misses, st.L1Misses, st.L1BypassStale, st.L1BypassWaking, st.L1BypassDown)
	}
	checkValues(t, families, map[sample]float64{
		{"tiercache_hits_total", "l1"}:         3,
		{"tiercache_misses_total", "l1"}:       float64(st.L1Misses),
		{"tiercache_hits_total", "l2"}:         float64(st.L2Hits),
		{"tiercache_misses_total", "l2"}:       1,
		{"tiercache_loads_total", ""}:          1,
		{"tiercache_leases_taken_total", ""}:   1,
		{"tiercache_l2_fills_total", ""}:       1,
		{"tiercache_fenced_fills_total", "l1"}: 0,
		{"tiercache_applied_total", ""}:        1,
		{"tiercache_l1_entries", ""}:           0, // evicted by b's invalidation
		{"tiercache_subscribed", ""}:           1,
		{"tiercache_subscribes_total", ""}:     1,
		{"tiercache_l1_max_age_seconds", ""}:   30,
		{"tiercache_redis_up", ""}:             1,
		{"tiercache_channel_up", ""}:           1,
		{"tiercache_invalidations_total", ""}:  0,
		{"tiercache_malformed_total", ""}:      0,
	})
	if n := loads.Load(); n != 1 {
		t.Errorf("loader calls: got %d, want 1", n)
	}

	h := histogram(t, families, "tiercache_invalidation_lag_seconds")
	if h.GetSampleCount() != 1 {
		t.Errorf("lag histogram count: got %d, want 1", h.GetSampleCount())
	}
	if sum := h.GetSampleSum(); sum <= 0 || sum > 5 {
		t.Errorf("lag histogram sum: got %vs, want in (0, 5]", sum)
	}
	if got, want := len(h.GetBucket()), len(tiercache.LagBuckets); got != want {
		t.Fatalf("lag histogram: got %d buckets, want %d", got, want)
	}
	var prev uint64
	for i, bk := range h.GetBucket() {
		if want := tiercache.LagBuckets[i].Seconds(); bk.GetUpperBound() != want {
			t.Errorf("bucket %d: upper bound %v, want %v", i, bk.GetUpperBound(), want)
		}
		if bk.GetCumulativeCount() < prev {
			t.Errorf("bucket le=%v: count %d below the previous bucket's %d; buckets must be cumulative",
				bk.GetUpperBound(), bk.GetCumulativeCount(), prev)
		}
		prev = bk.GetCumulativeCount()
		// The one observation sits in the first bucket whose bound is >= the sum.
		want := uint64(0)
		if h.GetSampleSum() <= bk.GetUpperBound() {
			want = 1
		}
		if bk.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: got %d, want %d (lag %vs)", bk.GetUpperBound(), bk.GetCumulativeCount(), want, h.GetSampleSum())
		}
	}

	// The writing replica counts the invalidation and the publish.
	regB := prometheus.NewRegistry()
	regB.MustRegister(NewCollector(b, Options{}))
	checkValues(t, gather(t, regB), map[sample]float64{
		{"tiercache_invalidations_total", ""}:    1,
		{"tiercache_published_total", ""}:        1,
		{"tiercache_publish_failures_total", ""}: 0,
		{"tiercache_applied_total", ""}:          0,
	})
}
