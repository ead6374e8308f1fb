package tiercache

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// flight collapses concurrent loads of one key in this replica (docs/design.md §2):
// the first caller, the leader, runs the load on its own goroutine; callers
// that arrive while it runs wait for its result, each until its own context
// ends.
//
// It replaces golang.org/x/sync/singleflight, which the design started
// with, because the read path needs four things that package cannot give
// together (measured and explained in the README):
//   - the leader runs inline: DoChan hands every load, L2 hits included, to
//     a new goroutine, which cost more than the Redis round trip itself;
//   - waiters honour their own contexts, which Do cannot;
//   - a caller can refuse to join a load that began too long ago
//     (docs/design.md §3.13: a load that began before a write must not answer a
//     read that began well after it);
//   - a flush forgets every load in flight at once (§3.6), and a loader
//     that panics becomes an error for every caller, not a crashed process.
type flight[T any] struct {
	mu sync.Mutex
	m  map[string]*flightCall[T] // guarded by mu: the joinable call per key
}

type flightCall[T any] struct {
	done   chan struct{} // closed when val and err are set
	start  int64         // clock reading when the leader began
	joined int           // guarded by flight.mu: callers that joined
	val    T
	err    error
}

// step is a fill in two stages: the first runs on the leader's goroutine
// and either answers, or returns the second stage, which runs on a goroutine
// of its own while the leader waits like every other caller.
type step[T any] func() (T, error, func() (T, error))

// do returns the result of fn for key, running it unless a call of key that
// began at or after notBefore is in flight, which it joins instead. now is
// the caller's clock reading, recorded as the new call's start. shared
// reports that the result came from another caller's run.
//
// The first stage of fn runs inline, so an L2 hit costs no goroutine hand
// off; it must bound itself (an L2 read does, by L2Timeout). Every caller,
// the leader included, stops waiting for the second stage when its own ctx
// ends; the stage goes on for the others (rule 12 of doc.go's table,
// TestCallerContextDoesNotCancelSharedLoad).
func (f *flight[T]) do(ctx context.Context, key string, now, notBefore int64, fn step[T]) (v T, err error, shared bool) {
	c, leader := f.claim(key, now, notBefore)
	if !leader {
		v, err = c.wait(ctx)
		return v, err, true
	}
	var next func() (T, error)
	c.val, c.err, next = first(key, fn)
	if next == nil {
		f.finish(key, c)
		return c.val, c.err, false
	}
	go func() {
		c.val, c.err = run(key, next)
		f.finish(key, c)
	}()
	v, err = c.wait(ctx)
	return v, err, false
}

// claim returns the call of key in flight that began at or after
// notBefore, joining it, or else a new call that the caller leads
// (leader): it must settle it with [flight.finish] once its val and err are
// set. [Cache.GetManyInfo] claims many keys at once this way, so a single
// Get of one of them joins the batch's fill.
func (f *flight[T]) claim(key string, now, notBefore int64) (c *flightCall[T], leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[key]; ok && c.start >= notBefore {
		c.joined++
		return c, false
	}
	c = &flightCall[T]{done: make(chan struct{}), start: now}
	if f.m == nil {
		f.m = make(map[string]*flightCall[T])
	}
	f.m[key] = c // replaces a call too old to join; its waiters keep it
	return c, true
}

func (c *flightCall[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// finish publishes c's result and makes key joinable by a new call.
func (f *flight[T]) finish(key string, c *flightCall[T]) {
	f.mu.Lock()
	if f.m[key] == c {
		delete(f.m, key)
	}
	f.mu.Unlock()
	close(c.done)
}

// first runs a fill's first stage, turning a panic into an error.
func first[T any](key string, fn step[T]) (v T, err error, next func() (T, error)) {
	defer func() {
		if r := recover(); r != nil {
			err, next = panicError(key, r), nil
		}
	}()
	return fn()
}

// run calls fn, turning a panic into an error for every caller.
func run[T any](key string, fn func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(key, r)
		}
	}()
	return fn()
}

func panicError(key string, r any) error {
	return fmt.Errorf("tiercache: load of %q panicked: %v\n%s", key, r, debug.Stack())
}

// forget makes later callers of key start a new load.
func (f *flight[T]) forget(key string) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
}

// forgetAll makes every later caller start a new load.
func (f *flight[T]) forgetAll() {
	f.mu.Lock()
	clear(f.m)
	f.mu.Unlock()
}
