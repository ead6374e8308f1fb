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
	return newCache(t, rdb, onFakeClock(opt, &clock, 0)), &clock
}

// onFakeClock makes opt a standalone replica whose monotonic and wall
// clocks both follow clock, the wall clock ahead by skew (the stamps of
// L2 values are on the wall clock, the fail-safe ages on the monotonic
// one).
func onFakeClock(opt Options, clock *atomic.Int64, skew time.Duration) Options {
	epoch := time.UnixMilli(1_700_000_000_000).Add(skew)
	opt.Standalone = true
	opt.hooks.now = clock.Load
	opt.hooks.wallClock = func() time.Time { return epoch.Add(time.Duration(clock.Load())) }
	return opt
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

func failingMany(context.Context, []string) (map[string]int, error) { return nil, errDBDown }

// rule 16 for batches: the values a batch loads become the keys' copies;
// when a later batch's load fails, an opted-in batch gets each copy young
// enough, marked stale with its age, a key without one keeps the error, and
// a batch that did not opt in gets the error for every key it loads.
func TestGetManyStaleIfError(t *testing.T) {
	c, clock := failSafeCache(t, Options{})
	ctx := context.Background()
	src := newSource()
	src.set("a", 1)
	src.set("b", 2)
	m := &manyLoader{src: src}
	if vals, err := c.GetMany(ctx, []string{"a", "b"}, m.load); err != nil || vals["a"] != 1 || vals["b"] != 2 {
		t.Fatalf("first GetMany = %v, %v", vals, err)
	}
	clock.Add(int64(2 * time.Second))
	src.set("c", 3)
	mustGet(t, c, "c", src) // c's copy is 0s old, a's and b's 2s
	src.set("a", 10)        // a write, then the database fails
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(int64(time.Second))
	if _, err := c.GetMany(ctx, []string{"a", "c"}, failingMany); !errors.Is(err, errDBDown) {
		t.Fatalf("GetMany without opt-in: %v, want errDBDown", err)
	}
	items, err := c.GetManyInfo(ctx, []string{"a", "b", "c", "d"}, failingMany, StaleIfError(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Item[int]{
		"a": {Err: errDBDown}, // 3s old: beyond the allowance
		"b": {Err: errDBDown},
		"c": {Val: 3, Info: Info{Source: SourceFailSafe, Stale: true, Age: time.Second, StaleReason: StaleError}},
		"d": {Err: errDBDown}, // never loaded
	}
	for k, w := range want {
		got := items[k]
		if got.Val != w.Val || got.Info != w.Info || !errors.Is(got.Err, w.Err) {
			t.Errorf("%s = %+v, want %+v", k, got, w)
		}
	}
	vals, err := c.GetMany(ctx, []string{"a", "b"}, failingMany, StaleIfError(time.Minute))
	if err != nil || vals["a"] != 1 || vals["b"] != 2 {
		t.Fatalf("GetMany with a minute's allowance = %v, %v; want the superseded a=1 and b=2", vals, err)
	}
	if _, err := c.GetMany(ctx, []string{"a"}, failingMany, InGroup("g")); !errors.Is(err, errOptions) {
		t.Fatalf("GetMany with InGroup: %v, want errOptions", err)
	}
	if s := c.Stats(); s.StaleServedError != 3 {
		t.Fatalf("StaleServedError = %d, want 3", s.StaleServedError)
	}
}

// rule 16 for batches: past the soft timeout, the keys whose load is still
// under way and that have a copy are answered from it; a key without a
// copy waits for the load; the load fills the tiers when it finishes.
func TestGetManySoftTimeout(t *testing.T) {
	c, _ := failSafeCache(t, Options{})
	ctx := context.Background()
	src := newSource()
	src.set("a", 1)
	mustGet(t, c, "a", src)
	src.set("a", 2)
	src.set("b", 5)
	if err := c.Invalidate(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	m := &manyLoader{src: src, hold: func([]string) { <-release }}
	type answer struct {
		items map[string]Item[int]
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		items, err := c.GetManyInfo(ctx, []string{"a", "b"}, m.load, StaleIfError(time.Minute), SoftTimeout(10*time.Millisecond))
		done <- answer{items, err}
	}()
	eventually(t, 5*time.Second, "a stale past the soft timeout, b still waiting", func() bool {
		return c.Stats().StaleServedTimeout == 1
	})
	select {
	case a := <-done:
		t.Fatalf("GetManyInfo returned before b's load: %+v", a)
	default:
	}
	close(release)
	a := <-done
	if a.err != nil || a.items["a"].Val != 1 || a.items["a"].Info.StaleReason != StaleTimeout || a.items["b"].Val != 5 || a.items["b"].Info.Stale {
		t.Fatalf("GetManyInfo = %+v, %v; want a=1 stale by timeout, b=5 loaded", a.items, a.err)
	}
	eventually(t, 5*time.Second, "late load installed", func() bool {
		v, info, err := c.GetInfo(ctx, "a", failing)
		return err == nil && v == 2 && info.Source == SourceL1
	})
	if m.calls.Load() != 1 {
		t.Fatalf("loader calls = %d, want 1", m.calls.Load())
	}
}
