package tiercache

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// skewClock sets the clocks of o an hour ahead: the wall clock that stamps
// its messages (and, in an earlier design, started its group generations)
// and the monotonic one of its freshness lease.
func skewClock(o *Options) {
	base := time.Now()
	o.hooks.wallClock = func() time.Time { return time.Now().Add(time.Hour) }
	o.hooks.now = func() int64 { return int64(time.Since(base) + time.Hour) }
}

// seedFrom makes o seed lost group counters with n.
func seedFrom(o *Options, n uint64) { o.hooks.genSeed = func() uint64 { return n } }

// rule 10: a group's generation stays monotonic when Redis loses the
// counter (a restart without persistence, a failover that lost the bump, a
// DEL or an eviction of the key) and one replica's clock is an hour ahead.
// Replica a (clock skewed) bumps the group; b caches the page under that
// generation; the counter is lost; c, a replica started afterwards, bumps
// the group again, from a seed below the generation a and b hold. Once a
// and b applied c's message, neither serves the page of before c's write,
// from either tier.
func TestGroupGenerationsSurviveLostCounterAndSkewedClock(t *testing.T) {
	t.Parallel()
	for _, loss := range []string{"del", "flushall"} {
		t.Run(loss, func(t *testing.T) {
			t.Parallel()
			srv := startRedisServer(t)
			admin := srv.client(t)
			src := newSource()
			src.set("page", 1)
			optA, optB, optC := fastOptions("gens"), fastOptions("gens"), fastOptions("gens")
			skewClock(&optA)
			seedFrom(&optA, seedBase+1000)
			seedFrom(&optB, seedBase+1000)
			seedFrom(&optC, 1000) // the new counter starts below the old one
			a := newCache(t, srv.client(t), optA)
			b := newCache(t, srv.client(t), optB)
			waitReady(t, a, b)
			ctx := context.Background()
			getPage(t, b, src)
			src.set("page", 2)
			applied := b.stats.applied.Load()
			if err := a.InvalidateGroup(ctx, "list"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "b applies a's bump", func() bool { return b.stats.applied.Load() > applied })
			getPage(t, b, src)
			if v, info := getPage(t, b, src); v != 2 || info.Source != SourceL1 {
				t.Fatalf("warm-up: got %d from %v, want 2 from L1", v, info.Source)
			}
			loseCounter(t, admin, b.l2.groupKey("list"), loss)
			c := newCache(t, srv.client(t), optC)
			waitReady(t, c)
			src.set("page", 3)
			appliedA, appliedB := a.stats.applied.Load(), b.stats.applied.Load()
			if err := c.InvalidateGroup(ctx, "list"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "a and b apply c's bump", func() bool {
				return a.stats.applied.Load() > appliedA && b.stats.applied.Load() > appliedB
			})
			for i := range 20 {
				for name, r := range map[string]*Cache[int]{"a": a, "b": b, "c": c} {
					if v, info := getPage(t, r, src); v != 3 {
						t.Fatalf("read %d on %s after the lost counter: got %d from %v, want 3", i, name, v, info.Source)
					}
				}
			}
		})
	}
}

// loseCounter makes Redis forget a group's generation: DEL of the key alone
// (L2 pages survive), or FLUSHALL (everything, as a restart without
// persistence), without breaking any subscription.
func loseCounter(t *testing.T, admin *redis.Client, key, how string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if how == "del" {
		err = admin.Del(ctx, key).Err()
	} else {
		err = admin.FlushAll(ctx).Err()
	}
	if err != nil {
		t.Fatalf("lose the counter (%s): %v", how, err)
	}
}

// The bookkeeping of generations below the one in memory: a message's
// makes the replica forget its own; a read from Redis replaces it unless a
// message moved it meanwhile.
func TestGroupsTakeLowerGenerations(t *testing.T) {
	t.Parallel()
	var g groups
	g.init(nil)
	g.raise("list", 10)
	g.heard(map[string]uint64{"list": 5, "other": 3})
	if _, ok := g.known("list"); ok {
		t.Fatal("a lower generation in a message: the one in memory is kept")
	}
	if n := g.local("other"); n != 3 {
		t.Fatalf("a new group from a message: got %d, want 3", n)
	}
	g.raise("list", 10)
	if n := g.adopt("list", 10, true, 7); n != 7 {
		t.Fatalf("Redis lower than memory when the read began: got %d, want 7", n)
	}
	g.raise("list", 9) // a message during the read
	if n := g.adopt("list", 7, true, 5); n != 9 {
		t.Fatalf("a message moved the generation during the read: got %d, want 9", n)
	}
	if n := g.adopt("list", 9, true, 12); n != 12 {
		t.Fatalf("Redis higher: got %d, want 12", n)
	}
}
