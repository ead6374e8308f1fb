package tiercache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// retryQueue holds invalidations whose L2 delete or publish failed, coalesced
// by key and group, bounded by Options.RetryQueueSize. Until a key's retry
// goes through, this replica neither reads it from L2 nor fills it there:
// L2 may still hold the value the failed delete was meant to remove.
//
// When the queue is full the keys that do not fit are not remembered one by
// one: the queue overflows, this replica stops using L2 altogether, and the
// next successful retry purges every value of the namespace from L2 and
// tells every replica to flush its L1. Nothing stale outlives the outage.
type retryQueue struct {
	size      atomic.Int64 // len(keys)+len(groups), readable without mu
	overflow  atomic.Bool  // keys were dropped: purge L2 and flush everywhere
	mu        sync.Mutex
	overflows uint64            // guarded by mu: bumped at every overflow
	seq       uint64            // guarded by mu: bumped on every queueing
	keys      map[string]uint64 // guarded by mu: key -> seq when last queued
	// groups maps a group to the generation its retry must reach.
	groups map[string]uint64 // guarded by mu
}

// groupPending reports whether a bump of group waits for a retry.
func (q *retryQueue) groupPending(group string) bool {
	if q.size.Load() == 0 {
		return false
	}
	q.mu.Lock()
	_, ok := q.groups[group]
	q.mu.Unlock()
	return ok
}

// pending reports whether key waits for a retry.
func (q *retryQueue) pending(key string) bool {
	if q.overflow.Load() {
		return true
	}
	if q.size.Load() == 0 {
		return false
	}
	q.mu.Lock()
	_, ok := q.keys[key]
	q.mu.Unlock()
	return ok
}

func (c *Cache[V]) queueRetry(keys []string, gens map[string]uint64) {
	q := &c.retry
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.keys == nil {
		q.keys, q.groups = make(map[string]uint64), make(map[string]uint64)
	}
	q.seq++
	for _, k := range keys {
		if _, ok := q.keys[k]; !ok && len(q.keys)+len(q.groups) >= c.opt.RetryQueueSize {
			c.stats.retryDropped.Add(1)
			if !q.overflow.Swap(true) {
				c.opt.Logger.Error("tiercache: invalidation retry queue full: L2 bypassed until it can be purged")
			}
			q.overflows++
			continue
		}
		q.keys[k] = q.seq
	}
	for g, n := range gens {
		if n > q.groups[g] {
			q.groups[g] = n
		}
	}
	q.size.Store(int64(len(q.keys) + len(q.groups)))
}

// snapshotRetry copies what is queued; the entries stay queued (and their
// keys stay out of L2) until doneRetry removes them after a success.
func (c *Cache[V]) snapshotRetry() (keys, gens map[string]uint64, overflows uint64) {
	q := &c.retry
	if q.size.Load() == 0 && !q.overflow.Load() {
		return nil, nil, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	keys = make(map[string]uint64, len(q.keys))
	for k, s := range q.keys {
		keys[k] = s
	}
	gens = make(map[string]uint64, len(q.groups))
	for g, n := range q.groups {
		gens[g] = n
	}
	if q.overflow.Load() {
		overflows = q.overflows
	}
	return keys, gens, overflows
}

// doneRetry removes what a successful retry covered: entries queued again
// since the snapshot stay, for their own retry.
func (c *Cache[V]) doneRetry(keys, gens map[string]uint64, overflows uint64) {
	q := &c.retry
	q.mu.Lock()
	defer q.mu.Unlock()
	if overflows != 0 && q.overflows == overflows {
		q.overflow.Store(false)
	}
	for k, s := range keys {
		if q.keys[k] == s {
			delete(q.keys, k)
		}
	}
	for g, n := range gens {
		if q.groups[g] <= n {
			delete(q.groups, g)
		}
	}
	q.size.Store(int64(len(q.keys) + len(q.groups)))
}

// retryLoop re-sends queued invalidations until they go through, and
// retries a failed refresh of the group generations.
func (c *Cache[V]) retryLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opt.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.l2.probeReplicas()
			c.retryOnce()
			c.refreshStaleGroups()
		case <-c.stop:
			c.retryOnce()
			return
		}
	}
}

// refreshStaleGroups retries the refresh of group generations that failed
// when the channel came up; until it succeeds, grouped reads ask Redis.
func (c *Cache[V]) refreshStaleGroups() {
	if !c.groups.stale.Load() || c.bus == nil || !c.bus.up.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.L2Timeout*5)
	defer cancel()
	_ = c.groups.refresh(ctx)
}

// retryOnce sends what is queued; what fails stays queued. After an
// overflow it purges L2 and broadcasts a flush instead of naming keys.
func (c *Cache[V]) retryOnce() {
	keyMap, gens, overflows := c.snapshotRetry()
	if len(keyMap)+len(gens) == 0 && overflows == 0 {
		return
	}
	keys := make([]string, 0, len(keyMap))
	for k := range keyMap {
		keys = append(keys, k)
	}
	ctx := context.Background()
	c.stats.retries.Add(1)
	got, err := c.l2.invalidate(ctx, keys, gens)
	if rejected(err) {
		keys, got, err = c.settleAll(ctx, keys, gens)
	}
	if err == nil && overflows != 0 {
		err = c.l2.purge(ctx)
	}
	if err == nil {
		c.applyLocal(nil, got)
		if c.bus != nil {
			err = c.publish(ctx, message{Keys: keys, Groups: got, Flush: overflows != 0})
		}
	}
	if err != nil {
		return
	}
	c.doneRetry(keyMap, gens, overflows)
	c.stats.retrySucceeded.Add(1)
}

// settleAll is retryOnce's way out of a batch Redis rejects: the entries
// it rejects for good are dropped, and the keys and group generations of
// the others that went through are returned for the broadcast.
func (c *Cache[V]) settleAll(ctx context.Context, keys []string, gens map[string]uint64) ([]string, map[string]uint64, error) {
	items := make([]retryItem, 0, len(keys)+len(gens))
	for _, k := range keys {
		items = append(items, retryItem{name: k})
	}
	for g := range gens {
		items = append(items, retryItem{name: g, group: true})
	}
	got := make(map[string]uint64, len(gens))
	done, err := c.settle(ctx, items, gens, got)
	keys = keys[:0]
	for _, it := range done {
		if !it.group {
			keys = append(keys, it.name)
		}
	}
	return keys, got, err
}
