package tiercacheotel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/tiercache"
)

// tracedEnv is a tracer provider that records every span in memory, and a
// Redis client whose commands it traces.
type tracedEnv struct {
	rec *tracetest.SpanRecorder
	tp  *sdktrace.TracerProvider
	ns  string
}

func newTracedEnv(t *testing.T) (*tracedEnv, tiercache.Options) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := &tracedEnv{rec: rec, tp: tp, ns: testenv.Namespace(t)}
	return e, tiercache.Options{Namespace: e.ns, Standalone: true, L2Timeout: time.Second, Tracer: New(tp)}
}

// cache is a replica with its own traced Redis client.
func (e *tracedEnv) cache(t *testing.T, opt tiercache.Options) *tiercache.Cache[string] {
	t.Helper()
	rdb := testenv.Redis(t)
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(e.tp), redisotel.WithDBStatement(false)); err != nil {
		t.Fatal(err)
	}
	c, err := tiercache.New[string](rdb, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// read runs one Get under a root span "request" and returns the span of
// the read and the names of its children, sorted.
func (e *tracedEnv) read(t *testing.T, c *tiercache.Cache[string], key string, load tiercache.LoadFunc[string]) (sdktrace.ReadOnlySpan, []string) {
	t.Helper()
	ctx, root := e.tp.Tracer("test").Start(context.Background(), "request")
	if _, err := c.Get(ctx, key, load); err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	root.End()
	return e.spanUnder(t, root, SpanName)
}

// spanUnder returns the ended span named name whose parent is root, and
// the names of its children, sorted.
func (e *tracedEnv) spanUnder(t *testing.T, root trace.Span, name string) (sdktrace.ReadOnlySpan, []string) {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	for _, s := range e.rec.Ended() {
		if s.Name() == name && s.Parent().SpanID() == root.SpanContext().SpanID() {
			found = s
		}
	}
	if found == nil {
		t.Fatalf("no %s span under the request", name)
	}
	var children []string
	for _, s := range e.rec.Ended() {
		if s.Parent().SpanID() == found.SpanContext().SpanID() {
			children = append(children, s.Name())
		}
	}
	slices.Sort(children)
	return found, children
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, what string, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		if g, ok := got[k]; !ok || g.AsInterface() != w {
			t.Errorf("%s: %s = %v, want %v (all: %v)", what, k, g.AsInterface(), w, s.Attributes())
		}
	}
}

// TestSpanTree: the spans of a miss, an L1 hit and an L2 hit. The miss's
// read span has the Redis commands of the fill (the L2 GET, the lease
// script, the fill script) and the loader's own span as children; the L1
// hit has none; the L2 hit on another replica has the one GET.
func TestSpanTree(t *testing.T) {
	e, opt := newTracedEnv(t)
	a := e.cache(t, opt)
	loads := 0
	load := func(ctx context.Context) (string, error) {
		loads++
		_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("test").Start(ctx, "db.load")
		span.End()
		return "widget", nil
	}

	get, children := e.read(t, a, "k", load)
	wantAttrs(t, "miss", get, map[attribute.Key]any{
		KeyKey: "k", KeyTier: "loader", KeyCollapsed: false, KeyLeaseWaited: false,
		KeyFenced: false, KeyL1Stored: true, KeyL2Stored: true,
	})
	t.Logf("miss: %s children %q", SpanName, children)
	if !slices.Contains(children, "db.load") || !slices.Contains(children, "get") || len(children) < 4 {
		t.Errorf("miss: children %q, want db.load, get, and the lease and fill scripts", children)
	}

	get, children = e.read(t, a, "k", load)
	wantAttrs(t, "L1 hit", get, map[attribute.Key]any{KeyTier: "l1", KeyCollapsed: false})
	if len(children) != 0 {
		t.Errorf("L1 hit: children %q, want none", children)
	}

	b := e.cache(t, opt)
	get, children = e.read(t, b, "k", load)
	wantAttrs(t, "L2 hit", get, map[attribute.Key]any{KeyTier: "l2", KeyL1Stored: true, KeyFenced: false})
	if !slices.Equal(children, []string{"get"}) {
		t.Errorf("L2 hit: children %q, want [get]", children)
	}
	if loads != 1 {
		t.Errorf("%d loads, want 1", loads)
	}
}

// TestBatchSpan: a GetMany gets one span under the caller's, with the
// counts of how its distinct keys were answered; the loader's span and
// the batch's Redis commands (the MGET, the leases) are its children.
func TestBatchSpan(t *testing.T) {
	e, opt := newTracedEnv(t)
	a := e.cache(t, opt)
	if _, err := a.Get(context.Background(), "hot", func(context.Context) (string, error) { return "h", nil }); err != nil {
		t.Fatal(err)
	}
	load := func(ctx context.Context, keys []string) (map[string]string, error) {
		_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("test").Start(ctx, "db.load")
		span.End()
		return map[string]string{"new": "n"}, nil
	}
	ctx, root := e.tp.Tracer("test").Start(context.Background(), "request")
	if _, err := a.GetMany(ctx, []string{"hot", "new", "gone", "new"}, load); err != nil {
		t.Fatal(err)
	}
	root.End()
	batch, children := e.spanUnder(t, root, BatchSpanName)
	wantAttrs(t, "batch", batch, map[attribute.Key]any{
		KeyKeys: int64(3), KeyL1Keys: int64(1), KeyL2Keys: int64(0), KeyLoaderKeys: int64(2),
		KeyNotFoundKeys: int64(1), KeyFailedKeys: int64(0), KeyFailSafeKeys: int64(0), KeyCollapsedKeys: int64(0),
	})
	t.Logf("batch: %s children %q", BatchSpanName, children)
	if !slices.Contains(children, "db.load") || !slices.Contains(children, "mget") {
		t.Errorf("batch: children %q, want db.load and mget among them", children)
	}
}

// TestUnsampledReadRecordsNothing: under a sampler that drops the read,
// the cache still answers and no span is recorded.
func TestUnsampledReadRecordsNothing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	c, err := tiercache.New[string](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only, Tracer: New(tp)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if v, err := c.Get(context.Background(), "k", func(context.Context) (string, error) { return "v", nil }); err != nil || v != "v" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans recorded, want 0", n)
	}
}

// TestUnsampledParentCostsNoAllocation: an L1 hit under a request span the
// sampler dropped starts no span of its own and allocates nothing.
func TestUnsampledParentCostsNoAllocation(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	c, err := tiercache.New[string](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only, Tracer: New(tp)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true,
	}))
	load := func(context.Context) (string, error) { return "v", nil }
	if _, err := c.Get(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Get(ctx, "k", load) }); n != 0 {
		t.Fatalf("got %v allocations per L1 hit under an unsampled parent, want 0", n)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans recorded, want 0", n)
	}
}
