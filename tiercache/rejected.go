package tiercache

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// rejected reports whether err is Redis refusing a command for good, for
// reasons tied to its keys or its form: CROSSSLOT, WRONGTYPE, an ACL that
// denies the key, "ERR wrong number of arguments". Retrying such an entry
// can never succeed. Everything else passes, or may: a connection error or
// timeout, LOADING, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, READONLY, BUSY, OOM,
// and an ACL that denies a whole command (the operator may grant it again),
// so those stay queued (docs/design.md §3.8).
func rejected(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	switch {
	case strings.HasPrefix(msg, "CROSSSLOT"), strings.HasPrefix(msg, "WRONGTYPE"):
		return true
	case strings.HasPrefix(msg, "NOPERM"):
		return strings.Contains(msg, " key")
	case strings.HasPrefix(msg, "ERR wrong number of arguments"):
		return true
	}
	return false
}

// retryItem is one queued key or group.
type retryItem struct {
	name  string
	group bool
}

// settle re-sends items after their batch was rejected, halving it until
// each rejected item stands alone; those are dropped, the rest go through.
// It returns the items that went through and their groups' generations, or
// the first error that may pass, leaving what it did not reach queued.
func (c *Cache[V]) settle(ctx context.Context, items []retryItem, gens, got map[string]uint64) ([]retryItem, error) {
	var keys []string
	part := make(map[string]uint64)
	for _, it := range items {
		if it.group {
			part[it.name] = gens[it.name]
		} else {
			keys = append(keys, it.name)
		}
	}
	g, err := c.l2.invalidate(ctx, keys, part)
	switch {
	case err == nil:
		for n, v := range g {
			got[n] = v
		}
		return items, nil
	case !rejected(err):
		return nil, err
	case len(items) == 1:
		c.dropRejected(items[0], gens, err)
		return nil, nil
	}
	h := len(items) / 2
	done, err := c.settle(ctx, items[:h], gens, got)
	if err != nil {
		return done, err
	}
	more, err := c.settle(ctx, items[h:], gens, got)
	return append(done, more...), err
}

// dropRejected removes an entry Redis rejects for good from the retry
// queue, with a log line and a count. The entry's key stays out of this
// replica's L2 reads no longer: Redis refuses that key anyway.
func (c *Cache[V]) dropRejected(it retryItem, gens map[string]uint64, err error) {
	c.stats.invalidationsDropped.Add(1)
	kind := "key"
	q := &c.retry
	q.mu.Lock()
	if it.group {
		kind = "group"
		if q.groups[it.name] <= gens[it.name] {
			delete(q.groups, it.name)
		}
	} else {
		delete(q.keys, it.name)
	}
	q.size.Store(int64(len(q.keys) + len(q.groups)))
	q.mu.Unlock()
	c.opt.Logger.Error("tiercache: invalidation dropped, redis rejects it for good", kind, it.name, "err", err)
}
