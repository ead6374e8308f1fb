package tiercache

import (
	"context"
	"errors"
	"testing"
	"time"
)

// getPage reads "page" of group "list".
func getPage(t *testing.T, c *Cache[int], src *source) (int, Info) {
	t.Helper()
	v, info, err := c.GetInfo(context.Background(), "page", src.loader("page"), InGroup("list"))
	if err != nil {
		t.Fatalf("get page: %v", err)
	}
	return v, info
}

// rule 10: a group bump that Redis did not take leaves the writer with
// a generation of its own proposal, which Redis may later hand to another
// writer for another state. Pages read under it go to no tier, so the next
// writer to be given that generation cannot read a page computed before its
// own write.
func TestFailedGroupBumpFillsNoTier(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	arb := aclUser(t, srv, admin, "a", allowAll...)
	src := newSource()
	src.set("page", 1)
	sameSeed := func(o *Options) { o.hooks.genSeed = func() uint64 { return 1 } }
	optA, optB := fastOptions("bug1"), fastOptions("bug1")
	sameSeed(&optA)
	sameSeed(&optB)
	a := newCache(t, arb, optA)
	b := newCache(t, srv.client(t), optB)
	waitReady(t, a, b)
	setACL(t, admin, "a", append(allowAll, "-eval", "-evalsha")...) // no group bumps
	src.set("page", 2)
	ctx := context.Background()
	if err := a.InvalidateGroup(ctx, "list"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("bump with EVAL denied: got %v, want ErrDeferred", err)
	}
	if v, info := getPage(t, a, src); v != 2 || info.L1Stored || info.L2Stored {
		t.Fatalf("writer's page under its unconfirmed generation: got %d %+v, want 2 stored nowhere", v, info)
	}
	src.set("page", 3)
	if err := b.InvalidateGroup(ctx, "list"); err != nil { // Redis hands b generation 1 too
		t.Fatal(err)
	}
	if v, _ := getPage(t, b, src); v != 3 {
		t.Fatalf("the next writer: got %d, want its own write 3", v)
	}
	eventually(t, 5*time.Second, "a hears of b's bump", func() bool { v, _ := getPage(t, a, src); return v == 3 })
}

// rule 10: when the channel comes back but the group generations
// cannot be refreshed, grouped reads do not trust the ones in memory: they
// ask Redis, and without an answer use neither tier.
func TestFailedRefreshDistrustsGroups(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	// b may not read group generations: every refresh fails.
	brdb := aclUser(t, srv, admin, "b", "~bug2:v:*", "~bug2:l:*", "~bug2:incarnations*", "&*", "+@all")
	src := newSource()
	src.set("page", 1)
	optB := fastOptions("bug2")
	gap := newCutOff(&optB)
	a := newCache(t, srv.client(t), fastOptions("bug2"))
	b := newCache(t, brdb, optB)
	waitSignal(t, gap.up, "first subscription")
	waitReady(t, a)
	ctx := context.Background()
	if err := a.InvalidateGroup(ctx, "list"); err != nil { // b learns the generation from the message
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b knows the generation", func() bool { _, ok := b.groups.known("list"); return ok })
	getPage(t, b, src)
	if _, info := getPage(t, b, src); info.Source != SourceL1 {
		t.Fatalf("warm-up: got %v, want L1", info.Source)
	}
	gap.cut(t, admin)
	waitReady(t, a)
	src.set("page", 2)
	if err := a.InvalidateGroup(ctx, "list"); err != nil { // lost for b
		t.Fatal(err)
	}
	gap.release(t)
	if v, info := getPage(t, b, src); v != 2 {
		t.Fatalf("after a failed refresh: got %d from %v, want 2", v, info.Source)
	}
}

// rule 10: when the channel comes back, the group generations are
// refreshed from Redis before L1 serves again: a bump sent while the
// replica was not listening is not missed.
func TestChannelUpRefreshesGroups(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	src := newSource()
	src.set("page", 1)
	optB := fastOptions("refresh")
	gap := newCutOff(&optB)
	a := newCache(t, srv.client(t), fastOptions("refresh"))
	b := newCache(t, srv.client(t), optB)
	waitSignal(t, gap.up, "first subscription")
	waitReady(t, a)
	getPage(t, b, src) // L1 and L2 hold the page under the current generation
	gap.cut(t, admin)
	waitReady(t, a)
	src.set("page", 2)
	if err := a.InvalidateGroup(context.Background(), "list"); err != nil { // lost for b
		t.Fatal(err)
	}
	gap.release(t)
	eventually(t, 5*time.Second, "b caught up", func() bool { return b.caughtUp(b.clockNow()) })
	if v, info := getPage(t, b, src); v != 2 {
		t.Fatalf("after re-subscribing: got %d from %v, want 2", v, info.Source)
	}
}

// List pages get a short L2 TTL of their own: every bump of the group
// orphans them.
func TestGroupPagesShortL2TTL(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	src := newSource()
	src.set("page", 1)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb), Mode: ModeL2Only, GroupL2TTL: 10 * time.Second, Jitter: -1})
	if _, info := getPage(t, c, src); !info.L2Stored {
		t.Fatalf("page not stored in L2: %+v", info)
	}
	gen, _ := c.groups.known("list")
	key := c.l2.valueKey(groupedKey("list", gen, "page"))
	ttl, err := rdb.PTTL(context.Background(), key).Result()
	if err != nil || ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("TTL of %s: got %v %v, want at most 10s", key, ttl, err)
	}
}
