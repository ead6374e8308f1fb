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

// groups tracks this replica's view of each group's generation: from Redis
// when the group is first used, when the channel (re)connects or while this
// replica is not caught up, from invalidation messages, and from this
// replica's own writes. No clock takes part (docs/design.md §3.10).
//
// A generation moves forward, with two exceptions for a counter that Redis
// lost and started again from a random seed, which can be below the one in
// memory. A message with a lower generation than the one in memory makes
// the replica forget it, so the next read asks Redis; a read from Redis
// lower than the one in memory when the read began replaces it. A lower
// generation may also be a concurrent bump that overtook this one on the
// way; then Redis holds the higher one, and the next read finds it.
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

// fetch reads the group's generation from Redis and takes it (see adopt).
func (g *groups) fetch(ctx context.Context, name string) (uint64, error) {
	before, had := g.known(name)
	gens, err := g.l2.groupGens(ctx, []string{name})
	if err != nil {
		return 0, err
	}
	return g.adopt(name, before, had, gens[name]), nil
}

// adopt takes n, read from Redis when the replica's generation was before
// (had: it had one). A lower n than before means Redis lost the counter
// since (generations in memory came from Redis, or from this replica's own
// bump, which Redis takes or the retry queue keeps out of both tiers), so
// n replaces before unless a message moved the generation meanwhile.
// Otherwise the generation is raised to n.
func (g *groups) adopt(name string, before uint64, had bool, n uint64) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, ok := g.m[name]
	switch {
	case had && n < before && ok && cur == before:
		g.m[name] = n
		return n
	case ok && cur > n:
		return cur
	}
	g.m[name] = n
	return n
}

// heard applies the generations of another replica's message: a higher one
// raises this replica's, a lower one makes it forget its own, so the next
// read asks Redis.
func (g *groups) heard(gens map[string]uint64) {
	if len(gens) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, n := range gens {
		if cur, ok := g.m[name]; ok && n < cur {
			delete(g.m, name)
			continue
		}
		g.m[name] = n
	}
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

// snapshot copies the generations in memory.
func (g *groups) snapshot() map[string]uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make(map[string]uint64, len(g.m))
	for k, n := range g.m {
		out[k] = n
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
	before := g.snapshot()
	names := make([]string, 0, len(before))
	for name := range before {
		names = append(names, name)
	}
	gens, err := g.l2.groupGens(ctx, names)
	if err != nil {
		g.stale.Store(true)
		return err
	}
	for name, n := range gens {
		g.adopt(name, before[name], true, n)
	}
	g.stale.Store(false)
	return nil
}
