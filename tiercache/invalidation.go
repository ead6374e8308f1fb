package tiercache

import (
	"context"
	"encoding/json"
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
}

const messageVersion = 1

// Invalidate removes keys from every tier of every replica. Call it after the
// change to the source of truth has committed, never before (DESIGN §3.1).
// When it returns, reads through this replica see the change; other replicas
// drop their copies when the broadcast reaches them. If Redis cannot be
// reached the work is queued and retried, and Invalidate still returns nil:
// the local part is done and the rest will follow.
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
		return nil
	}
	if c.bus != nil {
		if err := c.publish(ctx, keys, gens); err != nil {
			c.queueRetry(keys, gens)
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
	c.bus.pubMu.Lock()
	defer c.bus.pubMu.Unlock()
	c.bus.seq++
	msg := message{
		V: messageVersion, Src: c.opt.ReplicaID, Seq: c.bus.seq,
		TS: time.Now().UnixMicro(), Keys: keys, Groups: gens,
	}
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
type retryQueue struct {
	size atomic.Int64 // len(keys)+len(groups), readable without mu
	mu   sync.Mutex
	seq  uint64            // guarded by mu: bumped on every queueing
	keys map[string]uint64 // guarded by mu: key -> seq when last queued
	// groups maps a group to the generation its retry must reach.
	groups map[string]uint64 // guarded by mu
}

// pending reports whether key waits for a retry.
func (q *retryQueue) pending(key string) bool {
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
			c.opt.Logger.Error("tiercache: invalidation retry queue full, key dropped", "key", k)
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
func (c *Cache[V]) snapshotRetry() (map[string]uint64, map[string]uint64) {
	q := &c.retry
	if q.size.Load() == 0 {
		return nil, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	keys := make(map[string]uint64, len(q.keys))
	for k, s := range q.keys {
		keys[k] = s
	}
	gens := make(map[string]uint64, len(q.groups))
	for g, n := range q.groups {
		gens[g] = n
	}
	return keys, gens
}

// doneRetry removes what a successful retry covered: entries queued again
// since the snapshot stay, for their own retry.
func (c *Cache[V]) doneRetry(keys, gens map[string]uint64) {
	q := &c.retry
	q.mu.Lock()
	defer q.mu.Unlock()
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

// retryOnce sends what is queued; what fails stays queued.
func (c *Cache[V]) retryOnce() {
	keyMap, gens := c.snapshotRetry()
	if len(keyMap)+len(gens) == 0 {
		return
	}
	keys := make([]string, 0, len(keyMap))
	for k := range keyMap {
		keys = append(keys, k)
	}
	ctx := context.Background()
	c.stats.retries.Add(1)
	got, err := c.l2.invalidate(ctx, keys, gens)
	if err == nil {
		c.applyLocal(nil, got)
		if c.bus != nil {
			err = c.publish(ctx, keys, got)
		}
	}
	if err != nil {
		return
	}
	c.doneRetry(keyMap, gens)
	c.stats.retrySucceeded.Add(1)
}
