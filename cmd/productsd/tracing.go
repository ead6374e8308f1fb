package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/productcache/tiercache"
	"github.com/tiercache/productcache/tiercache/tiercacheotel"
)

// tracing is a replica's OpenTelemetry setup, made only when
// OTEL_EXPORTER_OTLP_ENDPOINT is set; a nil *tracing changes nothing, so a
// replica without it pays for no instrumentation at all. It traces each
// API request (otelhttp), each cache read (tiercacheotel), the Redis
// commands (redisotel) and the database queries (otelpgx), and exports
// the spans over OTLP/HTTP. The SDK reads the other standard variables
// itself: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; default parentbased_always_on)
// and the exporter's headers and timeout (OTEL_EXPORTER_OTLP_HEADERS, ...).
type tracing struct {
	tp *sdktrace.TracerProvider
}

// newTracing returns the tracing of a replica that exports to endpoint,
// the base URL of an OTLP/HTTP receiver (spans go to endpoint/v1/traces);
// nil for an empty endpoint.
func newTracing(ctx context.Context, endpoint, replicaID string) (*tracing, error) {
	if endpoint == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimRight(endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "productsd")}
	if replicaID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", replicaID))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return &tracing{tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))}, nil
}

// provider is the tracer provider; nil when tracing is off.
func (t *tracing) provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.tp
}

// pool adds the query tracer to a pool's configuration.
func (t *tracing) pool(pc *pgxpool.Config) {
	if t == nil {
		return
	}
	pc.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(t.tp))
}

// redis traces rdb's commands, without their arguments (values and keys
// stay out of the spans) and without the caller lookup each would cost.
func (t *tracing) redis(rdb redis.UniversalClient) error {
	if t == nil || rdb == nil {
		return nil
	}
	return redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(t.tp),
		redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false))
}

// cache is the Tracer of the cache's options: nil when tracing is off.
func (t *tracing) cache() tiercache.Tracer {
	if t == nil {
		return nil
	}
	return tiercacheotel.New(t.tp)
}

// handler wraps the API in a span per request, continuing a trace the
// caller propagated (W3C traceparent); the probes and /metrics are left
// out.
func (t *tracing) handler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, "productsd",
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithFilter(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/products") }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + route(r.URL.Path) }))
}

// route is the route of an API path, for span names: the id of a product
// is left out.
func route(path string) string {
	if rest, ok := strings.CutPrefix(path, "/products/"); ok && rest != "" {
		return "/products/{id}"
	}
	return path
}

// shutdown flushes the spans not yet exported.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}
