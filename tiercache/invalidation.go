package tiercache

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// message is the invalidation broadcast, version 1:
//
//	{"v":1,"src":"<replica>","seq":7,"ts":1732900000000000,"keys":["product:1"],"groups":{"products:list":42}}
//
// ts is the publish time in unix microseconds, for the lag metric.
type message struct {
	V      int               `json:"v"`
	Src    string            `json:"src"`
	Seq    uint64            `json:"seq"`
	TS     int64             `json:"ts"`
	Keys   []string          `json:"keys,omitempty"`
	Groups map[string]uint64 `json:"groups,omitempty"`
	// Flush tells receivers to drop their whole L1: the sender lost track
	// of which keys it failed to invalidate (its retry queue overflowed)
	// and purged L2 instead.
	Flush bool `json:"flush,omitempty"`
}

const messageVersion = 1

// Invalidate removes keys from every tier of every replica. Call it after the
// change to the source of truth has committed, never before (DESIGN §3.1).
// When it returns, reads through this replica see the change; other replicas
// drop their copies when the broadcast reaches them. It returns nil when
// Redis took both the delete and the publish. If Redis cannot be reached the
// work is queued and retried, and Invalidate returns an error wrapping
// [ErrDeferred]: the local part is done and the rest will follow, unless
// this process dies first.
func (c *Cache[V]) Invalidate(ctx context.Context, keys ...string) error {
	return c.invalidate(ctx, keys, nil)
}

// InvalidateGroup retires every key read with [InGroup](group), and keys
// besides, in one broadcast.
func (c *Cache[V]) InvalidateGroup(ctx context.Context, group string, keys ...string) error {
	return c.invalidate(ctx, keys, []string{group})
}

// invalidate keeps the order of DESIGN §3.2: delete in L2, then fence and
// evict this replica's L1, then publish. A reader here that read the old L2
// value just before the delete is fenced by the generation bump; had L1 gone
// first, that reader could refill it from the old L2 value afterwards.
func (c *Cache[V]) invalidate(ctx context.Context, keys, groupNames []string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.stats.invalidations.Add(1)
	proposed := make(map[string]uint64, len(groupNames))
	for _, g := range groupNames {
		proposed[g] = c.nextGen(ctx, g)
	}
	gens := proposed
	l2ok := true
	if c.l2 != nil {
		got, err := c.l2.invalidate(ctx, keys, proposed)
		if err != nil {
			l2ok = false
			c.opt.Logger.Warn("tiercache: invalidation deferred, redis unavailable", "keys", len(keys), "err", err)
		} else {
			gens = got
		}
	}
	if c.opt.hooks.afterL2Delete != nil {
		c.opt.hooks.afterL2Delete()
	}
	c.applyLocal(keys, gens)
	if !l2ok {
		c.queueRetry(keys, gens)
		return fmt.Errorf("%w: redis delete failed", ErrDeferred)
	}
	if c.bus != nil {
		if err := c.publish(ctx, keys, gens); err != nil {
			c.queueRetry(keys, gens)
			return fmt.Errorf("%w: publish failed", ErrDeferred)
		}
	}
	return nil
}

// nextGen proposes a generation above both the one this replica knows and
// the clock, so it wins even against a Redis that lost the counter.
func (c *Cache[V]) nextGen(ctx context.Context, group string) uint64 {
	n := c.groups.gen(ctx, group) + 1
	if t := uint64(time.Now().UnixMicro()); t > n {
		n = t
	}
	return n
}

// applyLocal fences and evicts keys in L1, forgets in-flight loads of them so
// later readers start a fresh one, and raises group generations.
func (c *Cache[V]) applyLocal(keys []string, gens map[string]uint64) {
	for _, k := range keys {
		if c.l1 != nil {
			c.l1.invalidate(k)
		}
		c.sf.Forget(k)
	}
	for g, n := range gens {
		c.groups.raise(g, n)
	}
}

// publish sends one invalidation message. Publishes of one replica are
// serialised: sequence numbers must reach subscribers in order, or a
// receiver would take two concurrent writes overtaking each other on
// different pooled connections for a lost message and flush its L1.
func (c *Cache[V]) publish(ctx context.Context, keys []string, gens map[string]uint64) error {
	return c.publishMessage(ctx, message{Keys: keys, Groups: gens})
}

// publishMessage stamps msg with the version, source, sequence and time,
// and sends it.
func (c *Cache[V]) publishMessage(ctx context.Context, msg message) error {
	c.bus.pubMu.Lock()
	defer c.bus.pubMu.Unlock()
	c.bus.seq++
	msg.V, msg.Src, msg.Seq, msg.TS = messageVersion, c.opt.ReplicaID, c.bus.seq, time.Now().UnixMicro()
	payload, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	err = c.l2.callWrite(ctx, func(ctx context.Context) error {
		if _, ok := c.rdb.(*redis.ClusterClient); ok {
			return c.rdb.SPublish(ctx, c.bus.channel, payload).Err()
		}
		return c.rdb.Publish(ctx, c.bus.channel, payload).Err()
	})
	if err != nil {
		c.stats.publishFailures.Add(1)
		return err
	}
	c.stats.published.Add(1)
	return nil
}

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

// retryLoop re-sends queued invalidations until they go through.
func (c *Cache[V]) retryLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opt.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.retryOnce()
		case <-c.stop:
			c.retryOnce()
			return
		}
	}
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
	if err == nil && overflows != 0 {
		err = c.l2.purge(ctx)
	}
	if err == nil {
		c.applyLocal(nil, got)
		if c.bus != nil {
			err = c.publishMessage(ctx, message{Keys: keys, Groups: got, Flush: overflows != 0})
		}
	}
	if err != nil {
		return
	}
	c.doneRetry(keyMap, gens, overflows)
	c.stats.retrySucceeded.Add(1)
}
