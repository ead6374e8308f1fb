package tiercache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// replicasOnFakeClock are two standalone replicas a and b on one Redis
// namespace and one fake clock; b's wall clock is skew behind a's.
func replicasOnFakeClock(t *testing.T, skew time.Duration) (a, b *Cache[int], clock *atomic.Int64) {
	t.Helper()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	clock = new(atomic.Int64)
	a = newCache(t, rdb, onFakeClock(Options{Namespace: ns}, clock, skew))
	b = newCache(t, rdb, onFakeClock(Options{Namespace: ns}, clock, 0))
	return a, b, clock
}

// slowLoader is src's loader of key whose database read takes a second
// of clock.
func slowLoader(src *source, clock *atomic.Int64, key string) LoadFunc[int] {
	return func(ctx context.Context) (int, error) {
		clock.Add(int64(time.Second))
		return src.loader(key)(ctx)
	}
}

// rule 16: a replica keeps a fail-safe copy of a value it read only in L2,
// aged from when the replica that filled L2 began the database read (the
// L2 value's stamp), so when the database fails an opted-in read on it
// gets the value labelled stale; a read that did not opt in gets the
// error; a copy older than the allowance is not served.
func TestStaleIfErrorCopyFromL2(t *testing.T) {
	a, b, clock := replicasOnFakeClock(t, 0)
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	slow := slowLoader(src, clock, "k")
	if v, info, err := a.GetInfo(ctx, "k", slow); err != nil || v != 1 || !info.L2Stored {
		t.Fatalf("a's Get = %d, %+v, %v; want 1 loaded and stored in L2", v, info, err)
	}
	clock.Add(int64(time.Second))
	if v, info := mustGet(t, b, "k", src); v != 1 || info.Source != SourceL2 {
		t.Fatalf("b's Get = %d, %+v; want 1 from L2", v, info)
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("database reads = %d, want 1 (a's)", n)
	}
	clock.Add(int64(time.Second)) // 3s since a's load began
	// The key leaves both tiers (a write's invalidation; an eviction or an
	// expiry does the same), and the database fails.
	if err := b.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, "k", failing); !errors.Is(err, errDBDown) {
		t.Fatalf("b's Get without opt-in = %d, %v; want errDBDown", v, err)
	}
	v, info, err := b.GetInfo(ctx, "k", failing, StaleIfError(5*time.Second))
	want := Info{Source: SourceFailSafe, Stale: true, Age: 3 * time.Second, StaleReason: StaleError}
	if err != nil || v != 1 || info != want {
		t.Fatalf("b's opted-in Get = %d, %+v, %v; want 1, %+v", v, info, err, want)
	}
	clock.Add(int64(3 * time.Second)) // 6s
	if v, err := b.Get(ctx, "k", failing, StaleIfError(5*time.Second)); !errors.Is(err, errDBDown) {
		t.Fatalf("b's Get of a copy older than allowed = %d, %v; want errDBDown", v, err)
	}
}

// loaderXY is a batch loader of x (1) and y (2), and those keys.
func loaderXY() (*manyLoader, []string) {
	src := newSource()
	src.set("x", 1)
	src.set("y", 2)
	return &manyLoader{src: src}, []string{"x", "y"}
}

// rule 16 for batches: the keys a batch reads in L2 (the MGET) get copies
// too, aged from the filling replica's batch load.
func TestGetManyStaleIfErrorCopyFromL2(t *testing.T) {
	a, b, clock := replicasOnFakeClock(t, 0)
	ctx := context.Background()
	m, keys := loaderXY()
	if _, err := a.GetMany(ctx, keys, m.load); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(time.Second))
	items, err := b.GetManyInfo(ctx, keys, m.load)
	if err != nil || items["x"].Info.Source != SourceL2 || items["y"].Info.Source != SourceL2 || m.calls.Load() != 1 {
		t.Fatalf("b's GetManyInfo = %+v, %v (loader calls %d); want both from L2", items, err, m.calls.Load())
	}
	clock.Add(int64(time.Second))
	for _, k := range keys {
		if err := b.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.GetMany(ctx, keys, failingMany); !errors.Is(err, errDBDown) {
		t.Fatalf("b's GetMany without opt-in: %v, want errDBDown", err)
	}
	items, err = b.GetManyInfo(ctx, keys, failingMany, StaleIfError(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]int{"x": 1, "y": 2} {
		want := Item[int]{Val: v, Info: Info{Source: SourceFailSafe, Stale: true, Age: 2 * time.Second, StaleReason: StaleError}}
		if got := items[k]; got != want {
			t.Errorf("%s = %+v, want %+v", k, got, want)
		}
	}
	clock.Add(int64(4 * time.Second)) // 6s
	if _, err := b.GetMany(ctx, keys, failingMany, StaleIfError(5*time.Second)); !errors.Is(err, errDBDown) {
		t.Fatalf("b's GetMany of copies older than allowed: %v, want errDBDown", err)
	}
}

// rule 16: a copy read in L2 is aged through the wall clocks: a filler
// whose clock is behind makes it older (never served staler than allowed),
// one whose clock is ahead makes it younger by at most the skew, and never
// younger than it was when read.
func TestStaleIfErrorCopyFromL2ClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name      string
		skew, age time.Duration // a's wall clock ahead of b's; the age b reports, 3s real
	}{
		{"same", 0, 3 * time.Second},
		{"filler behind", -time.Second, 4 * time.Second},
		{"filler ahead", time.Second, 2 * time.Second},
		{"filler far ahead", time.Hour, time.Second}, // the copy counts as loaded when b read it
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, clock := replicasOnFakeClock(t, tc.skew)
			ctx := context.Background()
			src := newSource()
			src.set("k", 1)
			mustGet(t, a, "k", src)
			clock.Add(int64(2 * time.Second))
			if _, info := mustGet(t, b, "k", src); info.Source != SourceL2 {
				t.Fatalf("b's Get from %v, want L2", info.Source)
			}
			clock.Add(int64(time.Second))
			if err := b.Invalidate(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			_, info, err := b.GetInfo(ctx, "k", failing, StaleIfError(time.Minute))
			if err != nil || info.Age != tc.age {
				t.Fatalf("b's opted-in Get: %+v, %v; want age %v", info, err, tc.age)
			}
		})
	}
}
