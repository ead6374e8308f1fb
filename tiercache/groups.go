package tiercache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// GetOption varies one [Cache.Get] call.
type GetOption func(*getOptions)

type getOptions struct {
	group                     string
	staleIfError, softTimeout time.Duration
}

// InGroup places the key in group: the effective cache key embeds the
// group's generation, so [Cache.InvalidateGroup] retires every key of the
// group at once, in O(1) Redis round trips, and the old entries age out
// (docs/design.md §3.10). Use it for list pages and other derived values.
// InGroup("") places the key in no group.
func InGroup(group string) GetOption {
	return func(o *getOptions) { o.group = group }
}

// applyOptions returns the effective key of a read and the tiers it may
// use. A grouped key embeds the group's generation, which this replica
// takes from memory only while that memory is known to be current: it is
// caught up with the invalidation channel (docs/design.md §3.13) and has refreshed
// its generations since the channel last came up. Otherwise it reads the
// generation from Redis; if Redis does not answer, or this replica's own
// last bump of the group has not reached Redis, the read uses neither tier:
// a page cached under a generation that is not Redis's may be one another
// writer's bump is about to make current again (docs/design.md §3.10).
func (c *Cache[V]) applyOptions(ctx context.Context, key string, now int64, opts []GetOption) (string, plan, error) {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	fs := plan{staleIfError: o.staleIfError, softTimeout: o.softTimeout}
	if o.group == "" {
		return key, fs, nil
	}
	if err := validKey(o.group); err != nil {
		return "", plan{}, err
	}
	p := fs
	p.grouped = true
	gen, trusted := c.groupGen(ctx, o.group, now)
	if !trusted || c.retry.groupPending(o.group) {
		p.skipL1, p.skipL2 = true, true
	}
	return groupedKey(o.group, gen, key), p, nil
}

// groupGen returns the group's generation and whether it can be trusted.
func (c *Cache[V]) groupGen(ctx context.Context, name string, now int64) (uint64, bool) {
	if c.l2 == nil {
		return c.groups.local(name), true
	}
	if c.caughtUp(now) && !c.groups.stale.Load() {
		if n, ok := c.groups.known(name); ok {
			return n, true
		}
	}
	n, err := c.groups.fetch(ctx, name)
	if err != nil {
		return c.groups.local(name), false
	}
	return n, true
}

// groups tracks this replica's view of each group's generation. A
// generation only moves forward: from Redis when the group is first used,
// when the channel (re)connects or while this replica is not caught up, from
// invalidation messages, and from this replica's own writes.
type groups struct {
	l2    *l2
	stale atomic.Bool // the refresh after the channel came up failed
	mu    sync.RWMutex
	m     map[string]uint64 // guarded by mu
}

func (g *groups) init(l *l2) {
	g.l2 = l
	g.m = make(map[string]uint64)
}

// known returns the group's generation if this replica has one.
func (g *groups) known(name string) (uint64, bool) {
	g.mu.RLock()
	n, ok := g.m[name]
	g.mu.RUnlock()
	return n, ok
}

// local returns the group's generation in memory, 0 if none.
func (g *groups) local(name string) uint64 {
	n, _ := g.known(name)
	return n
}

// fetch reads the group's generation from Redis and raises the local one to
// it.
func (g *groups) fetch(ctx context.Context, name string) (uint64, error) {
	gens, err := g.l2.groupGens(ctx, []string{name})
	if err != nil {
		return 0, err
	}
	return g.raise(name, gens[name]), nil
}

// raise moves the group's generation to at least n and returns it.
func (g *groups) raise(name string, n uint64) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.m[name]; cur > n {
		return cur
	}
	g.m[name] = n
	return n
}

func (g *groups) names() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]string, 0, len(g.m))
	for k := range g.m {
		out = append(out, k)
	}
	return out
}

// refresh re-reads every known group's generation from Redis, for after a
// gap in the invalidation channel. Until one succeeds, stale keeps grouped
// reads from trusting memory.
func (g *groups) refresh(ctx context.Context) error {
	if g.l2 == nil {
		return nil
	}
	gens, err := g.l2.groupGens(ctx, g.names())
	if err != nil {
		g.stale.Store(true)
		return err
	}
	for name, n := range gens {
		g.raise(name, n)
	}
	g.stale.Store(false)
	return nil
}
