package tiercache

import (
	"context"
	"strconv"
	"sync"
)

// GetOption varies one [Cache.Get] call.
type GetOption func(*getOptions)

type getOptions struct {
	group string
}

// InGroup places the key in group: the effective cache key embeds the
// group's generation, so [Cache.InvalidateGroup] retires every key of the
// group at once, in O(1) Redis round trips, and the old entries age out
// (DESIGN §3.10). Use it for list pages and other derived values.
func InGroup(group string) GetOption {
	return func(o *getOptions) { o.group = group }
}

func (c *Cache[V]) applyOptions(ctx context.Context, key string, opts []GetOption) string {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if o.group == "" {
		return key
	}
	var gen uint64
	if c.groupsFromRedis() {
		gen = c.groups.fetch(ctx, o.group)
	} else {
		gen = c.groups.gen(ctx, o.group)
	}
	return o.group + "#" + strconv.FormatUint(gen, 10) + ":" + key
}

// groupsFromRedis reports whether group generations must be read from Redis
// on every grouped read: without an invalidation channel (ModeL2Only), or
// while it is down, no message would tell this replica of another's bump,
// and a stale generation names a stale page that L2 keeps for its TTL.
func (c *Cache[V]) groupsFromRedis() bool {
	if c.l2 == nil {
		return false
	}
	return c.bus == nil || !c.bus.up.Load()
}

// groups tracks this replica's view of each group's generation. A
// generation only moves forward: from Redis when the group is first used or
// the channel (re)connects, from invalidation messages, and from this
// replica's own writes.
type groups struct {
	l2 *l2
	mu sync.RWMutex
	m  map[string]uint64 // guarded by mu
}

func (g *groups) init(l *l2) {
	g.l2 = l
	g.m = make(map[string]uint64)
}

// gen returns the group's current generation, learning it from Redis the
// first time the group is seen.
func (g *groups) gen(ctx context.Context, name string) uint64 {
	g.mu.RLock()
	n, ok := g.m[name]
	g.mu.RUnlock()
	if ok {
		return n
	}
	if g.l2 == nil {
		return g.raise(name, 0)
	}
	return g.fetch(ctx, name)
}

// fetch reads the group's generation from Redis, raising the local one to
// it; if Redis does not answer it falls back to the local one (0 for a group
// never seen, which is not remembered: the next read asks again).
func (g *groups) fetch(ctx context.Context, name string) uint64 {
	gens, err := g.l2.groupGens(ctx, []string{name})
	if err != nil {
		g.mu.RLock()
		defer g.mu.RUnlock()
		return g.m[name]
	}
	return g.raise(name, gens[name])
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
// gap in the invalidation channel.
func (g *groups) refresh(ctx context.Context) error {
	if g.l2 == nil {
		return nil
	}
	gens, err := g.l2.groupGens(ctx, g.names())
	if err != nil {
		return err
	}
	for name, n := range gens {
		g.raise(name, n)
	}
	return nil
}
