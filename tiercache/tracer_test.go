package tiercache

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

type spanKey struct{}

// fakeTracer records what a Tracer is told. Each read's context carries its
// number, so a loader can say which read's span it runs under.
type fakeTracer struct {
	mu    sync.Mutex
	keys  []string
	ended map[int]Info // read number -> how it was answered
}

func (f *fakeTracer) StartGet(ctx context.Context, key string) context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	return context.WithValue(ctx, spanKey{}, len(f.keys))
}

func (f *fakeTracer) EndGet(ctx context.Context, info Info, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended == nil {
		f.ended = make(map[int]Info)
	}
	f.ended[ctx.Value(spanKey{}).(int)] = info
}

// TestTracerSeesEachGet: with a Tracer, each read starts and ends once, with
// how it was answered; the loader of a miss runs under the context the
// read's StartGet returned, without the caller's cancellation.
func TestTracerSeesEachGet(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	tr := &fakeTracer{}
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb), Standalone: true, Tracer: tr})

	var loadSpan any
	load := func(lctx context.Context) (int, error) {
		loadSpan = lctx.Value(spanKey{})
		return 7, nil
	}
	if v, err := c.Get(context.Background(), "k", load); err != nil || v != 7 {
		t.Fatalf("miss: got %d, %v", v, err)
	}
	if loadSpan != 1 {
		t.Fatalf("the loader ran under read %v, want 1", loadSpan)
	}
	if v, err := c.Get(context.Background(), "k", load); err != nil || v != 7 {
		t.Fatalf("hit: got %d, %v", v, err)
	}
	if _, err := c.Get(context.Background(), "gone", func(context.Context) (int, error) { return 0, ErrNotFound }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("not found: got %v", err)
	}
	// A caller that gives up does not end the load it led.
	ctx, cancel := context.WithCancel(context.Background())
	type seen struct {
		span any
		err  error
	}
	loaded := make(chan seen, 1)
	_, _ = c.Get(ctx, "detached", func(lctx context.Context) (int, error) {
		cancel()
		loaded <- seen{lctx.Value(spanKey{}), lctx.Err()}
		return 1, nil
	})
	if s := <-loaded; s.span != 4 || s.err != nil {
		t.Fatalf("the detached load ran under read %v (want 4), its context ended: %v", s.span, s.err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.keys) != 4 || tr.keys[0] != "k" || tr.keys[1] != "k" || tr.keys[2] != "gone" {
		t.Fatalf("StartGet keys: %q", tr.keys)
	}
	if i := tr.ended[1]; i.Source != SourceLoader || !i.L1Stored || !i.L2Stored || i.Fenced {
		t.Fatalf("miss ended with %+v", i)
	}
	if i := tr.ended[2]; i.Source != SourceL1 {
		t.Fatalf("hit ended with %+v", i)
	}
	if i := tr.ended[3]; i.Source != SourceLoader || !i.Negative {
		t.Fatalf("not found ended with %+v", i)
	}
}

// fakeManyTracer is a fakeTracer that also records batches.
type fakeManyTracer struct {
	fakeTracer
	batches [][]string
	infos   map[int]BatchInfo // batch number -> how it was answered
}

func (f *fakeManyTracer) StartGetMany(ctx context.Context, keys []string) context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, slices.Clone(keys))
	return context.WithValue(ctx, spanKey{}, -len(f.batches))
}

func (f *fakeManyTracer) EndGetMany(ctx context.Context, info BatchInfo, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.infos == nil {
		f.infos = make(map[int]BatchInfo)
	}
	f.infos[-ctx.Value(spanKey{}).(int)] = info
}

// TestManyTracerSeesEachGetMany: with a Tracer that is a ManyTracer, each
// batch starts and ends once, with how its distinct keys were answered
// (one from L1, one from L2, two by its loader, one of them not found);
// its loader runs under the context StartGetMany returned, and the Gets
// before it are traced as Gets. A Tracer that is not a ManyTracer leaves
// batches alone.
func TestManyTracerSeesEachGetMany(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	tr := &fakeManyTracer{}
	c := newCache(t, rdb, Options{Namespace: ns, Standalone: true, Tracer: tr})
	other := newCache(t, rdb, Options{Namespace: ns, Standalone: true, Tracer: &fakeTracer{}})
	ctx := context.Background()
	one := func(context.Context) (int, error) { return 1, nil }
	if _, err := c.Get(ctx, "l1", one); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Get(ctx, "l2", one); err != nil {
		t.Fatal(err)
	}
	var loadSpan any
	load := func(lctx context.Context, keys []string) (map[string]int, error) {
		loadSpan = lctx.Value(spanKey{})
		return map[string]int{"new": 3}, nil
	}
	keys := []string{"l1", "l2", "new", "gone", "l1"}
	if _, err := c.GetMany(ctx, keys, load); err != nil {
		t.Fatal(err)
	}
	if _, err := other.GetMany(ctx, keys, load); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.batches) != 1 || !slices.Equal(tr.batches[0], keys) || len(tr.keys) != 1 {
		t.Fatalf("batches %q, Gets %q; want the one batch and the one Get", tr.batches, tr.keys)
	}
	want := BatchInfo{Keys: 4, L1: 1, L2: 1, Loader: 2, NotFound: 1}
	if got := tr.infos[1]; got != want {
		t.Errorf("batch ended with %+v, want %+v", got, want)
	}
	if loadSpan != -1 {
		t.Errorf("the batch loader ran under %v, want the batch's context (-1)", loadSpan)
	}
}

// TestL1HitAllocatesNothing: without a Tracer an L1 hit allocates nothing.
func TestL1HitAllocatesNothing(t *testing.T) {
	c, err := New[[]byte](nil, BytesCodec{}, Options{Mode: ModeL1Only})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	load := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(1000, func() {
		if _, info, _ := c.GetInfo(ctx, "k", load); info.Source != SourceL1 {
			t.Fatalf("got %v, want an L1 hit", info.Source)
		}
	})
	if n != 0 {
		t.Fatalf("got %v allocations per L1 hit, want 0", n)
	}
}

// TestCacheLinksNoTelemetryLibrary: package tiercache offers hooks and
// statistics; OpenTelemetry and Prometheus are linked only by the adapter
// packages tiercacheotel and tiercacheprom.
func TestCacheLinksNoTelemetryLibrary(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "go.opentelemetry.io/") || strings.HasPrefix(pkg, "github.com/prometheus/") {
			t.Errorf("tiercache links %s", pkg)
		}
	}
}
