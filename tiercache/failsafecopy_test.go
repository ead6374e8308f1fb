package tiercache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// rule 16 with copies in Redis (Options.FailSafeL2TTL): replica a reads a
// key, a write's invalidation removes it from L1 and L2, the database
// fails; replica b, which never read the key and so holds no copy of its
// own, answers an opted-in read with a's copy from Redis, labelled stale
// and aged from when a's load began; a copy older than the allowance, or
// a read that did not opt in, gets the error. The same for a batch, whose
// copies b reads in one round trip. Without FailSafeL2TTL b has nothing
// to answer with. On one node with the fill script and with the WATCH
// transaction, and on a Cluster.
func TestStaleIfErrorCopyInRedis(t *testing.T) {
	single := func(t *testing.T) redis.UniversalClient { return needRedis(t) }
	cluster := func(t *testing.T) redis.UniversalClient { return clusterClient(t, startCluster(t)) }
	for _, tc := range []struct {
		name       string
		rdb        func(t *testing.T) redis.UniversalClient
		scriptFree bool
		ttl        time.Duration
	}{
		{"script", single, false, time.Minute},
		{"transaction", single, true, time.Minute},
		{"cluster", cluster, true, time.Minute},
		{"no copies in Redis", single, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb(t)
			clock := new(atomic.Int64)
			opt := Options{Namespace: namespace(t, nil), FailSafeL2TTL: tc.ttl, ScriptFreeMiss: tc.scriptFree, L2Timeout: time.Second}
			a := newCache(t, rdb, onFakeClock(opt, clock, 0))
			b := newCache(t, rdb, onFakeClock(opt, clock, 0))
			t.Run("Get", func(t *testing.T) { checkCopyInRedisGet(t, rdb, a, b, clock, tc.ttl) })
			t.Run("GetMany", func(t *testing.T) { checkCopyInRedisGetMany(t, a, b, clock, tc.ttl > 0) })
		})
	}
}

func checkCopyInRedisGet(t *testing.T, rdb redis.UniversalClient, a, b *Cache[int], clock *atomic.Int64, ttl time.Duration) {
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	slow := slowLoader(src, clock, "k")
	if _, info, err := a.GetInfo(ctx, "k", slow); err != nil || !info.L2Stored {
		t.Fatalf("a's Get: %+v, %v; want loaded and stored in L2", info, err)
	}
	if _, err := a.Get(ctx, "gone", failingNotFound); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a's Get of a missing key: %v", err)
	}
	copyTTL, _ := rdb.PTTL(ctx, a.l2.copyKey("k")).Result()
	if negTTL, _ := rdb.PTTL(ctx, a.l2.copyKey("gone")).Result(); negTTL != -2*time.Nanosecond && negTTL != -2*time.Millisecond {
		t.Errorf("a not-found has a copy in Redis (PTTL %v)", negTTL)
	}
	if ttl > 0 && (copyTTL <= 0 || copyTTL > ttl) || ttl == 0 && copyTTL >= 0 {
		t.Fatalf("the copy's PTTL %v, want within (0, %v] (none when 0)", copyTTL, ttl)
	}
	clock.Add(int64(time.Second)) // 2s since a's load began
	src.set("k", 2)
	if err := a.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, "k", failing); !errors.Is(err, errDBDown) {
		t.Fatalf("b's Get without opt-in = %d, %v; want errDBDown", v, err)
	}
	v, info, err := b.GetInfo(ctx, "k", failing, StaleIfError(5*time.Second))
	if ttl == 0 {
		if !errors.Is(err, errDBDown) {
			t.Fatalf("b's opted-in Get without copies in Redis = %d, %+v, %v; want errDBDown", v, info, err)
		}
		return
	}
	want := Info{Source: SourceFailSafe, Stale: true, Age: 2 * time.Second, StaleReason: StaleError}
	if err != nil || v != 1 || info != want {
		t.Fatalf("b's opted-in Get = %d, %+v, %v; want 1, %+v", v, info, err, want)
	}
	if n := b.Stats().FailSafeL2Reads; n != 1 {
		t.Errorf("b read %d copies from Redis, want 1", n)
	}
	if v, err := b.Get(ctx, "k", failing, StaleIfError(time.Second)); !errors.Is(err, errDBDown) {
		t.Fatalf("b's Get of a copy older than allowed = %d, %v; want errDBDown", v, err)
	}
}

func checkCopyInRedisGetMany(t *testing.T, a, b *Cache[int], clock *atomic.Int64, copies bool) {
	ctx := context.Background()
	m, keys := loaderXY()
	began := clock.Load()
	if _, err := a.GetMany(ctx, keys, m.load); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(3 * time.Second))
	for _, k := range keys {
		if err := a.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.GetMany(ctx, keys, failingMany); !errors.Is(err, errDBDown) {
		t.Fatalf("b's GetMany without opt-in: %v, want errDBDown", err)
	}
	items, err := b.GetManyInfo(ctx, keys, failingMany, StaleIfError(5*time.Second))
	if !copies {
		if err != nil || !errors.Is(items["x"].Err, errDBDown) || !errors.Is(items["y"].Err, errDBDown) {
			t.Fatalf("b's opted-in GetMany without copies in Redis: %+v, %v; want errDBDown", items, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	age := time.Duration(clock.Load() - began)
	for k, v := range map[string]int{"x": 1, "y": 2} {
		want := Item[int]{Val: v, Info: Info{Source: SourceFailSafe, Stale: true, Age: age, StaleReason: StaleError}}
		if got := items[k]; got != want {
			t.Errorf("%s = %+v, want %+v", k, got, want)
		}
	}
	if _, err := b.GetMany(ctx, keys, failingMany, StaleIfError(2*time.Second)); !errors.Is(err, errDBDown) {
		t.Fatalf("b's GetMany of copies older than allowed: %v, want errDBDown", err)
	}
}

func failingNotFound(context.Context) (int, error) { return 0, ErrNotFound }
