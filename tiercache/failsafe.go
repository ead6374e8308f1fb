package tiercache

import (
	"context"
	"errors"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Reasons a stale value was served (docs/design.md §3.16), in [Info].
const (
	StaleError   = "error"   // the loader failed or panicked
	StaleTimeout = "timeout" // the loader was slower than the soft timeout
)

// StaleIfError opts one read into the fail-safe (RFC 5861 stale-if-error,
// docs/design.md §3.16): only when the loader fails (an error other than
// ErrNotFound, or a panic) the read returns the last value this replica
// read for the key, from the loader or from L2, if the load that read it
// from the database began at most maxStale ago, and says so
// in [Info] (Stale, Age, StaleReason). The copy survives invalidations, so
// after a write and a failing database it may be the superseded version:
// the caller accepted that by opting in. Zero or negative: off.
func StaleIfError(maxStale time.Duration) GetOption {
	return func(o *getOptions) { o.staleIfError = maxStale }
}

// SoftTimeout makes a load slower than d count as a failure for a read
// that also has [StaleIfError] and a usable copy: the read answers with the
// copy after d while the load goes on and fills the tiers as usual (still
// collapsed, still fenced). Zero or negative: off.
func SoftTimeout(d time.Duration) GetOption {
	return func(o *getOptions) { o.softTimeout = d }
}

// failSafe is the store of the last values read: its own bounded LRU,
// apart from L1 and L2, that invalidations do not touch. Every value this
// replica reads from the loader or from L2 goes in (an L1 hit does not
// touch it), stamped with the time the load that read it from the
// database began: this replica's own load, or for a value from L2 the
// filling replica's, taken from the value's stamp (see keepFromL2). So
// the age it reports is never less than the value's real age, but for
// clock skew between replicas.
type failSafe[V any] struct {
	lru *lru.Cache[string, failSafeCopy[V]] // nil when disabled
}

type failSafeCopy[V any] struct {
	val    V
	loaded int64 // clockNow when the load that read it began
}

func newFailSafe[V any](size int) (failSafe[V], error) {
	if size <= 0 {
		return failSafe[V]{}, nil
	}
	c, err := lru.New[string, failSafeCopy[V]](size)
	return failSafe[V]{lru: c}, err
}

// put keeps val, read from the database at loaded (a clockNow reading),
// as key's copy, unless the copy held was read later.
func (f failSafe[V]) put(key string, val V, loaded int64) { f.keep(key, val, loaded, false) }

// keep is put; with ties, a copy read at the same time is kept too (a
// value read in L2 again: it is the same, and this saves the copy of the
// key). The key is copied: a caller may reuse the string's bytes after
// the read.
func (f failSafe[V]) keep(key string, val V, loaded int64, ties bool) {
	if f.lru == nil {
		return
	}
	if cp, ok := f.lru.Peek(key); ok && (cp.loaded > loaded || ties && cp.loaded == loaded) {
		return
	}
	f.lru.Add(strings.Clone(key), failSafeCopy[V]{val: val, loaded: loaded})
}

// keepFromL2 keeps val, read in L2 with the stamp st, as key's copy. The
// stamp says when the filling replica's load began, by its wall clock;
// it is converted to this replica's clock through the wall clocks'
// difference now, so the copy's age is understated by at most how far
// the filler's wall clock ran ahead of this one's (never below zero). A
// value without a stamp (from an older version) is not kept: its age is
// unknown.
func (c *Cache[V]) keepFromL2(key string, val V, st l2Stamp) {
	if c.failSafe.lru == nil {
		return
	}
	at, ok := st.loaded()
	if !ok {
		return
	}
	now, wall := c.clocks()
	age := max(wall.Sub(at), 0)
	c.failSafe.keep(key, val, now-int64(age), true)
}

// clocks reads clockNow and wallNow at once: one reading, so that no
// pause between two can make a copy look younger, and the same L2 value
// read again converts to the same load time.
func (c *Cache[V]) clocks() (int64, time.Time) {
	if c.opt.hooks.now != nil || c.opt.hooks.wallClock != nil {
		now := c.clockNow()
		return now, c.wallNow()
	}
	t := time.Now()
	return int64(t.Sub(c.base)), t
}

// get returns key's copy if it was loaded at most maxStale before now.
func (f failSafe[V]) get(key string, now int64, maxStale time.Duration) (failSafeCopy[V], bool) {
	if f.lru == nil || maxStale <= 0 {
		return failSafeCopy[V]{}, false
	}
	cp, ok := f.lru.Get(key)
	if !ok || now-cp.loaded > int64(maxStale) {
		return failSafeCopy[V]{}, false
	}
	return cp, true
}

// young reports whether key has a copy loaded at most maxStale before
// now, without touching its recency.
func (f failSafe[V]) young(key string, now int64, maxStale time.Duration) bool {
	cp, ok := f.lru.Peek(key)
	return ok && now-cp.loaded <= int64(maxStale)
}

// copiesFromL2 is the second source of an opted-in read whose load
// failed (docs/design.md §3.16): for the keys without a local copy young
// enough for p, it reads their copies in Redis (Options.FailSafeL2TTL),
// written by whichever replica filled them, in one round trip, and keeps
// them in the store as a value read in L2 is kept (aged by its stamp).
// Redis failing leaves the store as it was.
func (c *Cache[V]) copiesFromL2(keys []string, p plan) {
	if c.l2 == nil || c.opt.FailSafeL2TTL <= 0 || c.failSafe.lru == nil || p.grouped || p.skipL2 {
		return
	}
	now := c.clockNow()
	var want []string
	for _, k := range keys {
		if !c.failSafe.young(k, now, p.staleIfError) {
			want = append(want, k)
		}
	}
	if len(want) == 0 {
		return
	}
	raws, err := c.l2.copies(context.Background(), want)
	if err != nil {
		return
	}
	for i, raw := range raws {
		if raw == nil {
			continue
		}
		neg, payload, st := decodeL2(raw)
		if neg {
			continue
		}
		v, err := unmarshal(c.codec, payload)
		if err != nil {
			c.stats.decodeErrors.Add(1)
			continue
		}
		c.stats.staleCopiesRead.Add(1)
		c.keepFromL2(want[i], v, st)
	}
}

// len is the number of copies held.
func (f failSafe[V]) len() int {
	if f.lru == nil {
		return 0
	}
	return f.lru.Len()
}

// failsOver reports whether err lets an opted-in read fall back to its
// copy: a failure of the source, not an answer ("not found") and not a
// closed cache.
func failsOver(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed)
}

// missFailSafe is [Cache.miss] for a read with StaleIfError: on a loader
// failure, or after the soft timeout while the load goes on, it answers
// with the key's copy if there is one young enough.
func (c *Cache[V]) missFailSafe(ctx context.Context, key string, load LoadFunc[V], now int64, p plan) (V, Info, error) {
	if p.softTimeout <= 0 {
		v, info, err := c.miss(ctx, key, load, now, p)
		if failsOver(err) {
			return c.stale(key, p, StaleError, v, info, err)
		}
		return v, info, err
	}
	type result struct {
		v    V
		info Info
		err  error
	}
	done := make(chan result, 1)
	go func() {
		v, info, err := c.miss(context.WithoutCancel(ctx), key, load, now, p)
		done <- result{v, info, err}
	}()
	timer := time.NewTimer(p.softTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if failsOver(r.err) {
			return c.stale(key, p, StaleError, r.v, r.info, r.err)
		}
		return r.v, r.info, r.err
	case <-timer.C:
		if v, info, err := c.stale(key, p, StaleTimeout, *new(V), Info{}, nil); err == nil && info.Stale {
			return v, info, nil
		}
	case <-ctx.Done():
		var zero V
		return zero, Info{}, ctx.Err()
	}
	select {
	case r := <-done:
		if failsOver(r.err) {
			return c.stale(key, p, StaleError, r.v, r.info, r.err)
		}
		return r.v, r.info, r.err
	case <-ctx.Done():
		var zero V
		return zero, Info{}, ctx.Err()
	}
}

// stale answers with key's fail-safe copy, the local one or else the one
// in Redis, if it is young enough for the read, else with what the failed
// read got (v, info, err).
func (c *Cache[V]) stale(key string, p plan, reason string, v V, info Info, err error) (V, Info, error) {
	c.copiesFromL2([]string{key}, p)
	return c.staleLocal(key, p, reason, v, info, err)
}

// staleLocal is stale with the local store only.
func (c *Cache[V]) staleLocal(key string, p plan, reason string, v V, info Info, err error) (V, Info, error) {
	now := c.clockNow()
	cp, ok := c.failSafe.get(key, now, p.staleIfError)
	if !ok {
		return v, info, err
	}
	if reason == StaleTimeout {
		c.stats.staleTimeout.Add(1)
	} else {
		c.stats.staleError.Add(1)
	}
	age := time.Duration(now - cp.loaded)
	c.stats.staleAgeSum.Add(int64(age))
	for m := c.stats.staleAgeMax.Load(); int64(age) > m && !c.stats.staleAgeMax.CompareAndSwap(m, int64(age)); {
		m = c.stats.staleAgeMax.Load()
	}
	return cp.val, Info{Source: SourceFailSafe, Stale: true, Age: age, StaleReason: reason}, nil
}
