package tiercache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// message is the invalidation broadcast, version 1:
//
//	{"v":1,"src":"<replica>","inc":"<random>","seq":7,"ts":1732900000000000,"keys":["product:1"],"groups":{"products:list":42}}
//
// src is the publisher's ReplicaID and inc a random id it drew at start:
// sequence numbers count per incarnation, so a replica restarted under the
// same ReplicaID is a new publisher, not a rewind. seq counts the messages
// of one incarnation that Redis accepted. ts is the publish time in unix
// microseconds, for the lag metric.
type message struct {
	V      int               `json:"v"`
	Src    string            `json:"src"`
	Inc    string            `json:"inc,omitempty"`
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
// change to the source of truth has committed, never before (docs/design.md §3.1).
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
// besides, in one broadcast. The empty group is refused with
// [ErrInvalidKey]: InGroup("") reads no group, so there is nothing to
// retire.
func (c *Cache[V]) InvalidateGroup(ctx context.Context, group string, keys ...string) error {
	return c.invalidate(ctx, keys, []string{group})
}

// invalidate keeps the order of docs/design.md §3.2: delete in L2, then fence and
// evict this replica's L1, then publish. A reader here that read the old L2
// value just before the delete is fenced by the generation bump; had L1 gone
// first, that reader could refill it from the old L2 value afterwards.
//
// It runs under closeMu held shared, so Close waits for it and its last
// retry pass sees whatever it queued (docs/design.md §3.8).
func (c *Cache[V]) invalidate(ctx context.Context, keys, groupNames []string) error {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if err := validKeys(keys, groupNames); err != nil {
		return err
	}
	c.stats.invalidations.Add(1)
	proposed := make(map[string]uint64, len(groupNames))
	for _, g := range groupNames {
		proposed[g] = c.nextGen(g)
	}
	if c.l2 == nil {
		c.applyLocal(keys, proposed)
		return nil
	}
	runHook(c.opt.hooks.beforeL2Delete)
	gens, err := c.l2.invalidate(ctx, keys, proposed)
	runHook(c.opt.hooks.afterL2Delete)
	if errors.Is(err, ErrNotReplicated) {
		return c.notReplicated(ctx, keys, gens, err)
	}
	if err != nil {
		// Queue before the local step: from then on this replica keeps the
		// keys out of L2, where the failed delete left the old values, and
		// its grouped reads out of both tiers, since the proposed
		// generations are not Redis's. In the other order a reader could
		// slip in between, take a fence token after the bump and install
		// the old L2 value (docs/design.md §3.2, §3.3).
		c.queueRetry(keys, proposed)
		c.localStep(keys, proposed)
		c.warn.Warn("delete", "tiercache: invalidation deferred, redis did not take the delete", "keys", len(keys), "err", err)
		return fmt.Errorf("%w: redis delete: %v", ErrDeferred, err)
	}
	c.localStep(keys, gens)
	if c.bus == nil {
		return nil
	}
	if err := c.publish(ctx, message{Keys: keys, Groups: gens}); err != nil {
		c.queueRetry(keys, gens)
		c.warn.Warn("publish", "tiercache: invalidation deferred, publish failed", "keys", len(keys), "err", err)
		return fmt.Errorf("%w: publish: %v", ErrDeferred, err)
	}
	return nil
}

// notReplicated finishes an invalidation that the master took but too few
// replicas acknowledged (docs/design.md §3.15): the master has the delete,
// so the local part and the broadcast go ahead as after a success, and the
// Redis part is queued for retry, since a failover could still lose it.
func (c *Cache[V]) notReplicated(ctx context.Context, keys []string, gens map[string]uint64, werr error) error {
	c.queueRetry(keys, gens)
	c.localStep(keys, gens)
	if c.bus != nil {
		if err := c.publish(ctx, message{Keys: keys, Groups: gens}); err != nil {
			c.warn.Warn("publish", "tiercache: invalidation deferred, publish failed", "keys", len(keys), "err", err)
			return fmt.Errorf("%w: publish: %v", ErrDeferred, err)
		}
	}
	c.warn.Warn("wait", "tiercache: invalidation deferred, too few replicas acknowledged", "keys", len(keys), "err", werr)
	return fmt.Errorf("%w: %w", ErrDeferred, werr)
}

// nextGen proposes a generation one above the one this replica knows; Redis
// makes it at least one above its own, or a fresh seed where it lost the
// counter. No clock takes part (docs/design.md §3.10).
func (c *Cache[V]) nextGen(group string) uint64 {
	return c.groups.local(group) + 1
}

// localStep is an invalidation's local step: [Cache.applyLocal], then the
// afterLocal hook, which a test uses to read right after it.
func (c *Cache[V]) localStep(keys []string, gens map[string]uint64) {
	c.applyLocal(keys, gens)
	runHook(c.opt.hooks.afterLocal)
}

// applyLocal fences and evicts keys in L1, forgets in-flight loads of them so
// later readers start a fresh one, and raises group generations to the
// ones of this replica's own invalidation.
func (c *Cache[V]) applyLocal(keys []string, gens map[string]uint64) {
	c.evict(keys)
	for g, n := range gens {
		c.groups.raise(g, n)
	}
}

// evict fences and evicts keys in L1 and forgets in-flight loads of them.
func (c *Cache[V]) evict(keys []string) {
	for _, k := range keys {
		if c.l1 != nil {
			c.l1.invalidate(k)
		}
		c.flight.forget(k)
	}
}

// wallNow reads the wall clock, which stamps messages for the lag
// statistics and L2 values with their expiry and load time (for eager
// refresh and the age of fail-safe copies read in L2), and decides nothing
// else.
func (c *Cache[V]) wallNow() time.Time {
	if c.opt.hooks.wallClock != nil {
		return c.opt.hooks.wallClock()
	}
	return time.Now()
}

// publish sends msg's keys and groups to every other replica and returns
// once a message carrying them was accepted by Redis, or failed.
//
// Publishes of one replica are serialised: sequence numbers must reach
// subscribers in order, or a receiver would take two concurrent writes
// overtaking each other on different pooled connections for a lost message
// and flush its L1. Serialised one by one, a replica could publish only one
// invalidation per Redis round trip, so they are batched as a database
// commits a group: the first caller to find no batch open opens one and
// leads it; callers arriving while another batch is being sent join the
// open batch; the leader waits for the send before it, closes its batch and
// sends it as one message. Every member learns the outcome of that send,
// which does not depend on the leader's context: it is bounded by
// Options.WriteTimeout, as each Redis call of an invalidation is.
func (c *Cache[V]) publish(ctx context.Context, msg message) error {
	b := c.bus
	bt, lead := b.join(msg)
	if c.opt.hooks.joined != nil {
		c.opt.hooks.joined(lead)
	}
	if !lead {
		<-bt.done
		return bt.err
	}
	b.sendMu.Lock()
	b.batchMu.Lock()
	if b.open == bt {
		b.open = nil // later callers start the next batch
	}
	b.batchMu.Unlock()
	runHook(c.opt.hooks.beforeSend)
	// The batch is every member's, not the leader's: it is sent whether or
	// not the leader's ctx ended meanwhile, bounded by WriteTimeout alone.
	bt.err = c.send(context.WithoutCancel(ctx), bt.msg)
	b.sendMu.Unlock()
	close(bt.done)
	return bt.err
}

// batch is the invalidations of several callers, sent as one message.
type batch struct {
	msg  message
	seen map[string]struct{} // keys in msg
	done chan struct{}       // closed when err is set
	err  error
}

// maxBatchKeys caps the keys of one message; a full batch is closed and the
// next caller opens another.
const maxBatchKeys = 512

// join adds msg to the open batch, opening one (and leading it) if there
// is none or it is full.
func (b *bus) join(msg message) (bt *batch, lead bool) {
	b.batchMu.Lock()
	defer b.batchMu.Unlock()
	if b.open == nil || len(b.open.msg.Keys)+len(msg.Keys) > maxBatchKeys || b.hooks.unbatched {
		b.open = &batch{msg: message{Groups: map[string]uint64{}}, seen: map[string]struct{}{}, done: make(chan struct{})}
		lead = true
	}
	bt = b.open
	for _, k := range msg.Keys {
		if _, ok := bt.seen[k]; !ok {
			bt.seen[k] = struct{}{}
			bt.msg.Keys = append(bt.msg.Keys, k)
		}
	}
	for g, n := range msg.Groups {
		bt.msg.Groups[g] = max(bt.msg.Groups[g], n)
	}
	bt.msg.Flush = bt.msg.Flush || msg.Flush
	return bt, lead
}

// send stamps msg with the version, source, incarnation, sequence and time,
// and publishes it; the caller holds sendMu. A failed send does not use up
// its sequence number: if it did, every receiver would see a gap and flush.
// (One that failed by timing out may still be delivered; its number is then
// delivered twice, which receivers take as a repeat, not a gap.)
func (c *Cache[V]) send(ctx context.Context, msg message) error {
	b := c.bus
	msg.V, msg.Src, msg.Inc, msg.Seq, msg.TS = messageVersion, c.opt.ReplicaID, b.inc, b.seq+1, c.wallNow().UnixMicro()
	payload, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	err = c.l2.callWrite(ctx, func(ctx context.Context) error { return b.publishPayload(ctx, payload) })
	if err != nil {
		c.stats.publishFailures.Add(1)
		return err
	}
	b.seq++
	c.stats.published.Add(1)
	return nil
}

// decodeMessage parses an invalidation broadcast; it fails for anything
// that is not a well-formed message of this version from a named publisher.
func decodeMessage(payload []byte) (message, error) {
	var m message
	if err := json.Unmarshal(payload, &m); err != nil {
		return message{}, err
	}
	if m.V != messageVersion {
		return message{}, fmt.Errorf("tiercache: message version %d, want %d", m.V, messageVersion)
	}
	if m.Src == "" {
		return message{}, errors.New("tiercache: message without a source")
	}
	return m, nil
}
