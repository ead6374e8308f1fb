package tiercache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

var errDBDown = errors.New("database down")

// failSafeCache is a standalone tiered cache on a fake clock, so ages are
// exact.
func failSafeCache(t *testing.T, opt Options) (*Cache[int], *atomic.Int64) {
	t.Helper()
	rdb := needRedis(t)
	var clock atomic.Int64
	opt.Namespace = namespace(t, rdb)
	opt.Standalone = true
	opt.hooks.now = clock.Load
	return newCache(t, rdb, opt), &clock
}

func failing(context.Context) (int, error) { return 0, errDBDown }

// rule 16: a read that opted in gets the last loaded value, marked stale
// with its age, when the loader fails; a read that did not opt in gets the
// error, even right after a write superseded the copy; a copy older than
// the allowance is not served.
func TestStaleIfErrorServesCopyOnlyWhenAskedAndYoungEnough(t *testing.T) {
	c, clock := failSafeCache(t, Options{})
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	if v, err := c.Get(ctx, "k", src.loader("k")); err != nil || v != 1 {
		t.Fatalf("first Get = %d, %v; want 1", v, err)
	}
	src.set("k", 2) // a write, then the database fails
	if err := c.Invalidate(ctx, "k"); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	clock.Add(int64(3 * time.Second))
	if v, err := c.Get(ctx, "k", failing); !errors.Is(err, errDBDown) {
		t.Fatalf("Get without opt-in = %d, %v; want errDBDown", v, err)
	}
	v, info, err := c.GetInfo(ctx, "k", failing, StaleIfError(5*time.Second))
	if err != nil || v != 1 {
		t.Fatalf("opted-in Get = %d, %v; want 1 (stale)", v, err)
	}
	want := Info{Source: SourceFailSafe, Stale: true, Age: 3 * time.Second, StaleReason: StaleError}
	if info != want {
		t.Fatalf("info = %+v, want %+v", info, want)
	}
	panicking := func(context.Context) (int, error) { panic("loader bug") }
	if v, info, err := c.GetInfo(ctx, "k", panicking, StaleIfError(5*time.Second)); err != nil || v != 1 || !info.Stale {
		t.Fatalf("opted-in Get with a panicking loader = %d, %+v, %v; want 1 stale", v, info, err)
	}
	clock.Add(int64(3 * time.Second)) // the copy is 6s old now
	if v, err := c.Get(ctx, "k", failing, StaleIfError(5*time.Second)); !errors.Is(err, errDBDown) {
		t.Fatalf("Get of a copy older than allowed = %d, %v; want errDBDown", v, err)
	}
	if s := c.Stats(); s.StaleServedError != 2 || s.StaleAgeMax != 3*time.Second {
		t.Fatalf("StaleServedError, StaleAgeMax = %d, %v; want 2, 3s", s.StaleServedError, s.StaleAgeMax)
	}
}

// rule 16: "not found" is an answer, not a failure: no stale copy for it.
func TestStaleIfErrorKeepsNotFound(t *testing.T) {
	c, _ := failSafeCache(t, Options{})
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	if _, err := c.Get(ctx, "k", src.loader("k")); err != nil {
		t.Fatal(err)
	}
	src.set("k", 0)
	if err := c.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k", src.loader("k"), StaleIfError(time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted key = %d, %v; want ErrNotFound", v, err)
	}
}

// rule 16: a load slower than the soft timeout answers an opted-in read
// with the copy; the load goes on and fills the tiers, so the next read
// gets the new value without loading again.
func TestSoftTimeoutServesCopyWhileLoadCompletes(t *testing.T) {
	c, _ := failSafeCache(t, Options{})
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	if _, err := c.Get(ctx, "k", src.loader("k")); err != nil {
		t.Fatal(err)
	}
	src.set("k", 2)
	if err := c.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	finished := make(chan struct{})
	slow := func(ctx context.Context) (int, error) {
		defer close(finished)
		<-release
		return src.loader("k")(ctx)
	}
	v, info, err := c.GetInfo(ctx, "k", slow, StaleIfError(time.Minute), SoftTimeout(10*time.Millisecond))
	if err != nil || v != 1 || !info.Stale || info.StaleReason != StaleTimeout {
		t.Fatalf("Get past the soft timeout = %d, %+v, %v; want 1 stale by timeout", v, info, err)
	}
	loads := src.loads.Load()
	close(release)
	<-finished
	eventually(t, 5*time.Second, "late load installed", func() bool {
		v, info, err := c.GetInfo(ctx, "k", failing)
		return err == nil && v == 2 && info.Source == SourceL1
	})
	if got := src.loads.Load(); got != loads+1 {
		t.Fatalf("loads = %d, want %d: the late load must fill the tiers", got, loads+1)
	}
	if s := c.Stats(); s.StaleServedTimeout != 1 {
		t.Fatalf("StaleServedTimeout = %d, want 1", s.StaleServedTimeout)
	}
}

// rule 16: the fail-safe store is bounded by FailSafeSize.
func TestFailSafeStoreBounded(t *testing.T) {
	c, _ := failSafeCache(t, Options{FailSafeSize: 2})
	ctx := context.Background()
	src := newSource()
	for _, k := range []string{"a", "b", "c"} {
		src.set(k, 1)
		if _, err := c.Get(ctx, k, src.loader(k)); err != nil {
			t.Fatal(err)
		}
		if err := c.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Stats().FailSafeLen; n != 2 {
		t.Fatalf("FailSafeLen = %d, want 2", n)
	}
	if _, err := c.Get(ctx, "a", failing, StaleIfError(time.Hour)); !errors.Is(err, errDBDown) {
		t.Fatalf("Get of the evicted copy: %v, want errDBDown", err)
	}
	if v, err := c.Get(ctx, "c", failing, StaleIfError(time.Hour)); err != nil || v != 1 {
		t.Fatalf("Get of a kept copy = %d, %v; want 1", v, err)
	}
}
