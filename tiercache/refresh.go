package tiercache

import (
	"context"
	"sync"
	"time"
)

// refreshSlots bounds the eager refreshes one cache runs at once; a read
// that finds every slot taken starts none (a later read tries again).
const refreshSlots = 32

// refresher runs eager refreshes (docs/design.md §3.18): at most one per
// key in this replica, at most refreshSlots at once, each on a goroutine of
// its own under a context that Close cancels before waiting for them.
type refresher struct {
	mu     sync.Mutex
	keys   map[string]struct{} // guarded by mu: keys being refreshed
	closed bool                // guarded by mu
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func (r *refresher) init() { r.ctx, r.cancel = context.WithCancel(context.Background()) }

// begin claims key for a refresh; the caller must call end if it did.
func (r *refresher) begin(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.keys[key]; busy || r.closed || len(r.keys) >= refreshSlots {
		return false
	}
	if r.keys == nil {
		r.keys = make(map[string]struct{})
	}
	r.keys[key] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *refresher) end(key string) {
	r.mu.Lock()
	delete(r.keys, key)
	r.mu.Unlock()
	r.wg.Done()
}

// close cancels the refreshes under way and waits for them.
func (r *refresher) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// refreshWindow is the part of ttl at whose end a read refreshes a value;
// zero when eager refresh is off.
func (c *Cache[V]) refreshWindow(ttl time.Duration) time.Duration {
	return time.Duration(c.opt.RefreshAhead * float64(ttl))
}

// refreshAt returns the clock reading at which an L1 entry whose L2 value
// expires in remaining (of ttl) should start a refresh; 0 for never.
func (c *Cache[V]) refreshAt(now int64, remaining, ttl time.Duration) int64 {
	w := c.refreshWindow(ttl)
	if w <= 0 || remaining <= w {
		return 0
	}
	return now + int64(remaining-w)
}

// refresh starts a background refresh of key, which the caller read in
// the last part of its L2 TTL; it reports whether it started one. The
// refresh takes the key's L2 lease only if Redis still holds the value in
// that window, so of all the replicas that read it there, one loads; the
// caller does not wait.
func (c *Cache[V]) refresh(key string, load LoadFunc[V], p plan) bool {
	if c.l2 == nil || load == nil || p.skipL2 || !c.ref.begin(key) {
		return false
	}
	go func() {
		_, _ = run(key, func() (fillResult[V], error) { return c.refreshNow(key, load, p) })
		c.ref.end(key)
		if h := c.opt.hooks.refreshDone; h != nil {
			h(key)
		}
	}()
	return true
}

// refreshNow is a refresh: the same fill as after a miss, under the same
// rules. The L1 fence token is taken first (docs/design.md §3.3); the L2
// write is guarded by the lease, which a writer's delete removes (§3.4); an
// error stores nothing, so the old value expires as it would have.
func (c *Cache[V]) refreshNow(key string, load LoadFunc[V], p plan) (fillResult[V], error) {
	var tok fenceToken
	if c.l1 != nil && !p.skipL1 {
		tok = c.l1.token(key)
	}
	if c.retry.pending(key) {
		return fillResult[V]{}, nil
	}
	// Redis is asked about half as much again as the window (at most
	// halfway to the full TTL): the stamp a reader went by was taken before
	// the fill's SET reached Redis, and on another replica's clock. A value
	// just renewed still has more left. Without the margin a read at the
	// window's edge found Redis a few milliseconds short of it and
	// refreshed nothing (TestRefreshAheadZipf: 9 hot-key loads on the
	// request path in 10s, 0 with it).
	ttl := c.l2TTL(false, p)
	w := c.refreshWindow(ttl)
	lease := c.l2.refreshLease(c.ref.ctx, key, min(w+w/2, w+(ttl-w)/2))
	if lease == "" {
		return fillResult[V]{}, nil
	}
	c.stats.refreshes.Add(1)
	return c.load(c.ref.ctx, key, load, tok, lease, p, fillResult[V]{})
}

// refreshOnHit starts a refresh when an L1 hit finds its entry's refresh
// time passed, once per entry: if no refresh could start, a later hit
// tries again.
func (c *Cache[V]) refreshOnHit(key string, e *l1Entry[V], now int64, load LoadFunc[V], p plan) {
	if e.refreshAt == 0 || now < e.refreshAt || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	if !c.refresh(key, load, p) {
		e.refreshing.Store(false)
	}
}
