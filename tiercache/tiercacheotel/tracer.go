// Package tiercacheotel traces the reads of a [tiercache.Cache] with
// OpenTelemetry. It is kept out of package tiercache so that the cache
// itself does not depend on OpenTelemetry: [New] returns a
// [tiercache.Tracer] to set in [tiercache.Options.Tracer].
//
// Each Get or GetInfo gets a span "tiercache.Get" (kind internal), a child
// of the span in the caller's context. A read that leads a fill hands the
// span on: the Redis commands of the fill (with go-redis's redisotel
// instrumentation on the client) and whatever the loader traces (a
// database query) are its children. A read that joined another's fill has
// no children: tiercache.collapsed says so. The attributes, set only on a
// sampled span:
//
//	tiercache.key           the key read
//	tiercache.tier          the tier that answered: "l1", "l2", "loader" or "failsafe"
//	tiercache.collapsed     the read joined a fill another read of this replica led
//	tiercache.lease_waited  the fill waited on another replica's load (the L2 lease)
//	tiercache.fenced        an invalidation raced the fill and its L1 install was refused
//	tiercache.negative      the answer is a "not found"
//	tiercache.l1_stored     the fill installed the value in L1
//	tiercache.l2_stored     the fill wrote the value to Redis
//	tiercache.stale         the answer is a fail-safe copy (StaleIfError)
//
// An error other than tiercache.ErrNotFound is recorded on the span and
// sets its status to Error.
//
// Each GetMany or GetManyInfo gets a span "tiercache.GetMany" the same
// way (the Tracer is a [tiercache.ManyTracer]); the batch's Redis commands
// and its loader's spans are its children. Its attributes count the
// distinct keys ([tiercache.BatchInfo]):
//
//	tiercache.keys            distinct keys asked
//	tiercache.l1_keys         answered from L1 (not-founds included, as below)
//	tiercache.l2_keys         answered from L2
//	tiercache.loader_keys     answered by the loader
//	tiercache.failsafe_keys   answered with a fail-safe copy
//	tiercache.not_found_keys  answered "not found"
//	tiercache.failed_keys     answered with another error
//	tiercache.collapsed_keys  joined a fill another read of this replica led
//
// A batch with a failed key has status Error, with the count.
package tiercacheotel

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/productcache/tiercache"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/tiercache/productcache/tiercache"

// SpanName is the name of the span of one read.
const SpanName = "tiercache.Get"

// BatchSpanName is the name of the span of one batch read.
const BatchSpanName = "tiercache.GetMany"

// The attribute keys.
const (
	KeyKey         = attribute.Key("tiercache.key")
	KeyTier        = attribute.Key("tiercache.tier")
	KeyCollapsed   = attribute.Key("tiercache.collapsed")
	KeyLeaseWaited = attribute.Key("tiercache.lease_waited")
	KeyFenced      = attribute.Key("tiercache.fenced")
	KeyNegative    = attribute.Key("tiercache.negative")
	KeyL1Stored    = attribute.Key("tiercache.l1_stored")
	KeyL2Stored    = attribute.Key("tiercache.l2_stored")
	KeyStale       = attribute.Key("tiercache.stale")

	KeyKeys          = attribute.Key("tiercache.keys")
	KeyL1Keys        = attribute.Key("tiercache.l1_keys")
	KeyL2Keys        = attribute.Key("tiercache.l2_keys")
	KeyLoaderKeys    = attribute.Key("tiercache.loader_keys")
	KeyFailSafeKeys  = attribute.Key("tiercache.failsafe_keys")
	KeyNotFoundKeys  = attribute.Key("tiercache.not_found_keys")
	KeyFailedKeys    = attribute.Key("tiercache.failed_keys")
	KeyCollapsedKeys = attribute.Key("tiercache.collapsed_keys")
)

var _ tiercache.ManyTracer = (*Tracer)(nil)

// Tracer is a [tiercache.Tracer] that makes OpenTelemetry spans.
type Tracer struct {
	tracer trace.Tracer
}

// New returns a Tracer whose spans come from tp; nil tp means the global
// provider (otel.GetTracerProvider).
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Tracer{tracer: tp.Tracer(ScopeName)}
}

// StartGet starts the read's span. Under a parent that is neither sampled
// nor recording (a request the sampler dropped) it starts none: the span
// would be dropped too, and the read's children follow the parent anyway.
func (t *Tracer) StartGet(ctx context.Context, key string) context.Context {
	ctx, span, ok := t.start(ctx, SpanName)
	if !ok {
		return ctx
	}
	if span.IsRecording() {
		// The key may live in a buffer the caller reuses; the span
		// outlives the read until it is exported.
		span.SetAttributes(KeyKey.String(strings.Clone(key)))
	}
	return ctx
}

// start starts a span named name, unless the parent is neither sampled
// nor recording (then ok is false and ctx is returned as it was).
func (t *Tracer) start(ctx context.Context, name string) (context.Context, trace.Span, bool) {
	if p := trace.SpanFromContext(ctx); p.SpanContext().IsValid() && !p.SpanContext().IsSampled() && !p.IsRecording() {
		return ctx, nil, false
	}
	ctx, span := t.tracer.Start(ctx, name)
	return ctx, span, true
}

// StartGetMany starts the batch's span, under the same rule as StartGet.
// The keys are not recorded: a batch may ask for a hundred.
func (t *Tracer) StartGetMany(ctx context.Context, keys []string) context.Context {
	ctx, _, _ = t.start(ctx, BatchSpanName)
	return ctx
}

// EndGetMany sets the batch span's counts from info and ends it.
func (t *Tracer) EndGetMany(ctx context.Context, info tiercache.BatchInfo, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		KeyKeys.Int(info.Keys),
		KeyL1Keys.Int(info.L1),
		KeyL2Keys.Int(info.L2),
		KeyLoaderKeys.Int(info.Loader),
		KeyFailSafeKeys.Int(info.FailSafe),
		KeyNotFoundKeys.Int(info.NotFound),
		KeyFailedKeys.Int(info.Failed),
		KeyCollapsedKeys.Int(info.Collapsed),
	)
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case info.Failed > 0:
		span.SetStatus(codes.Error, strconv.Itoa(info.Failed)+" keys failed")
	}
	span.End()
}

// EndGet sets the span's attributes from info and ends it. A span that
// does not record (not sampled, or the unsampled parent StartGet left in
// place) has nothing to set or end.
func (t *Tracer) EndGet(ctx context.Context, info tiercache.Info, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		KeyTier.String(tier(info.Source)),
		KeyCollapsed.Bool(info.Collapsed),
		KeyLeaseWaited.Bool(info.LeaseWaited),
		KeyFenced.Bool(info.Fenced),
		KeyNegative.Bool(info.Negative),
		KeyL1Stored.Bool(info.L1Stored),
		KeyL2Stored.Bool(info.L2Stored),
		KeyStale.Bool(info.Stale),
	)
	if err != nil && !errors.Is(err, tiercache.ErrNotFound) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// tier names the source of an answer; "none" for a read that failed
// before any tier answered.
func tier(s tiercache.Source) string {
	if s == 0 {
		return "none"
	}
	return s.String()
}
