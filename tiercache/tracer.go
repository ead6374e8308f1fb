package tiercache

import (
	"context"
	"errors"
)

// Tracer sees each read of [Cache.Get] and [Cache.GetInfo], for tracing:
// package tiercacheotel implements it with OpenTelemetry, a span per read.
// Set it in [Options.Tracer]. Both methods run on the reader's goroutine,
// on every read, L1 hits included, so they should be cheap when the read
// is not sampled. Eager refreshes are not traced; batches are, by a
// Tracer that is also a [ManyTracer].
type Tracer interface {
	// StartGet is called as a read of key begins, with the caller's
	// context; the read goes on with the context it returns. A fill this
	// read leads (the L2 read, the lease wait, the load) runs under that
	// context without its cancellation, so the spans of its Redis calls
	// and of the loader are children of the read's. key may be backed by
	// memory the caller reuses once an L1 hit returns: an implementation
	// that keeps it past EndGet copies it (strings.Clone).
	StartGet(ctx context.Context, key string) context.Context
	// EndGet is called once the read is answered, with the context
	// StartGet returned, how the read was answered and its error
	// (ErrNotFound for a "not found").
	EndGet(ctx context.Context, info Info, err error)
}

// ManyTracer is a [Tracer] that also sees each batch read of
// [Cache.GetMany] and [Cache.GetManyInfo]; a Tracer without these methods
// leaves batches untraced. Package tiercacheotel implements it: a span
// per batch.
type ManyTracer interface {
	Tracer
	// StartGetMany is called as a batch read of keys begins (keys as
	// asked, duplicates and invalid keys included), with the caller's
	// context; the batch goes on with the context it returns. The fill
	// the batch leads (its L2 reads, leases and loader call) runs under
	// that context without its cancellation, as a Get's does. keys is
	// the caller's slice: an implementation that keeps it copies it.
	StartGetMany(ctx context.Context, keys []string) context.Context
	// EndGetMany is called once the batch is answered, with the context
	// StartGetMany returned, how its keys were answered and the batch's
	// error (ErrClosed, an invalid option or ctx's; a key's own error is
	// counted in info).
	EndGetMany(ctx context.Context, info BatchInfo, err error)
}

// BatchInfo is how the distinct keys of a batch read were answered, for a
// [ManyTracer]. The tier counts include the "not found" answers of that
// tier; a key that failed counts in none.
type BatchInfo struct {
	Keys     int // distinct keys asked
	L1       int // answered from L1
	L2       int // answered from L2
	Loader   int // answered by the loader (this batch's or a fill it joined)
	FailSafe int // answered with a fail-safe copy (StaleIfError)
	// NotFound counts the keys answered "not found", from any tier;
	// Failed those answered with another error; Collapsed those that
	// joined a fill already in flight in this replica.
	NotFound, Failed, Collapsed int
}

// batchInfo counts items as BatchInfo says.
func batchInfo[V any](items map[string]Item[V]) BatchInfo {
	b := BatchInfo{Keys: len(items)}
	for _, it := range items {
		switch {
		case errors.Is(it.Err, ErrNotFound):
			b.NotFound++
		case it.Err != nil:
			b.Failed++
		}
		if it.Info.Collapsed {
			b.Collapsed++
		}
		if it.Err != nil && !errors.Is(it.Err, ErrNotFound) {
			continue
		}
		switch it.Info.Source {
		case SourceL1:
			b.L1++
		case SourceL2:
			b.L2++
		case SourceLoader:
			b.Loader++
		case SourceFailSafe:
			b.FailSafe++
		}
	}
	return b
}
