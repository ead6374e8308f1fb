package tiercacheotel

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/productcache/tiercache"
)

// BenchmarkL1Hit is the cost of tracing on the hot path, side by side in
// one run: an L1 hit with no Tracer, and with one whose SDK provider
// samples ParentBased(TraceIDRatioBased(r)) for r 0, 1% and 100%, the
// sampled spans going through a batch processor to an exporter that drops
// them. In the "root" cases each read is a trace of its own, so the
// sampler decides on every read; in "unsampled-parent" the read runs
// under a request span the sampler dropped, as under otelhttp for 99% of
// requests at 1%.
func BenchmarkL1Hit(b *testing.B) {
	for _, bc := range []struct {
		name   string
		ratio  float64 // negative: no Tracer
		parent bool    // under an unsampled parent span
	}{
		{"off", -1, false},
		{"unsampled-parent", 0.01, true},
		{"root,sample=0", 0, false},
		{"root,sample=1%", 0.01, false},
		{"root,sample=100%", 1, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			opt := tiercache.Options{Mode: tiercache.ModeL1Only}
			if bc.ratio >= 0 {
				tp := sdktrace.NewTracerProvider(
					sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(bc.ratio))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opt.Tracer = New(tp)
			}
			c, err := tiercache.New[[]byte](nil, tiercache.BytesCodec{}, opt)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			if bc.parent {
				ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true,
				}))
			}
			load := func(context.Context) ([]byte, error) { return []byte("v"), nil }
			if _, err := c.Get(ctx, "product:1", load); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, "product:1", load); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
