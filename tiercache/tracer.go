package tiercache

import "context"

// Tracer sees each read of [Cache.Get] and [Cache.GetInfo], for tracing:
// package tiercacheotel implements it with OpenTelemetry, a span per read.
// Set it in [Options.Tracer]. Both methods run on the reader's goroutine,
// on every read, L1 hits included, so they should be cheap when the read
// is not sampled. [Cache.GetMany] and eager refreshes are not traced.
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
