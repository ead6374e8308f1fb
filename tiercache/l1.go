package tiercache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// fenceStripes is the number of generation counters keys are hashed onto.
// Two keys sharing a stripe only cost a spurious fenced fill, never a stale
// one.
const fenceStripes = 1024

// l1 is the in-process tier: an LRU of ready-to-serve entries plus the fence
// that keeps loads which raced an invalidation out of it.
//
// The LRU is split into shards by key hash, each a golang-lru cache behind
// its own mutex: one mutex taken by every hit makes parallel hits slower
// than serial ones (BenchmarkGetL1HitParallel). Recency is then kept per
// shard, which evicts much as one LRU would when keys spread evenly.
type l1[V any] struct {
	shards  []l1Shard[V]
	mask    uint64      // len(shards)-1, a power of two minus one
	enabled atomic.Bool // false while the invalidation channel is down
	seed    maphash.Seed

	// flushMu is held shared by installs and exclusively by flushes, so no
	// install that checked the flush generation can land after the purge.
	flushMu  sync.RWMutex
	flushGen atomic.Uint64
	stripes  [fenceStripes]stripe
}

// l1Shard is one store of L1 (an LRU or a 2Q cache, see [L1Policy]) and
// the hit counters of its keys, kept apart so that parallel hits on
// different shards share no cache line.
type l1Shard[V any] struct {
	lru          l1Store[V]
	hits, misses atomic.Uint64
	_            [96]byte // to 128 bytes: two cache lines, as adjacent-line prefetch pairs them
}

type stripe struct {
	mu  sync.Mutex // orders installs against invalidations of its keys
	gen uint64     // guarded by mu
}

type l1Entry[V any] struct {
	key     string // the key it was installed under, see twoQueue
	val     V
	neg     bool
	expires int64 // unix nanoseconds on the coarse clock

	// refreshAt is when a hit should start an eager refresh (clock
	// reading; 0 for never), refreshing whether one did.
	refreshAt  int64
	refreshing atomic.Bool
}

// fenceToken is the generation a load saw before it started.
type fenceToken struct {
	flush uint64
	key   uint64
}

// newL1 returns an L1 of size entries in shards stores (a power of two)
// that evict by policy.
func newL1[V any](size, shards int, policy L1Policy) (*l1[V], error) {
	l := &l1[V]{shards: make([]l1Shard[V], shards), mask: uint64(shards - 1), seed: maphash.MakeSeed()}
	per := max(1, size/shards)
	for i := range l.shards {
		c, err := newL1Store[V](policy, per)
		if err != nil {
			return nil, err
		}
		l.shards[i].lru = c
	}
	return l, nil
}

// shard returns key's shard; with one shard it hashes nothing.
func (l *l1[V]) shard(key string) *l1Shard[V] {
	if l.mask == 0 {
		return &l.shards[0]
	}
	return &l.shards[maphash.String(l.seed, key)&l.mask]
}

// len returns the number of entries.
func (l *l1[V]) len() int {
	n := 0
	for i := range l.shards {
		n += l.shards[i].lru.Len()
	}
	return n
}

// counts returns the hits and misses of every shard.
func (l *l1[V]) counts() (hits, misses uint64) {
	for i := range l.shards {
		hits += l.shards[i].hits.Load()
		misses += l.shards[i].misses.Load()
	}
	return hits, misses
}

func (l *l1[V]) usable() bool { return l.enabled.Load() }

func (l *l1[V]) enable(on bool) { l.enabled.Store(on) }

// get returns a live entry and counts the hit or miss. An expired entry is
// removed; that bounds how long any value, however it got there, is served.
func (l *l1[V]) get(key string, now int64) (*l1Entry[V], bool) {
	sh := l.shard(key)
	e, ok := sh.lru.Get(key)
	if ok && now >= e.expires {
		sh.lru.Remove(key)
		ok = false
	}
	if !ok {
		sh.misses.Add(1)
		return nil, false
	}
	sh.hits.Add(1)
	return e, true
}

func (l *l1[V]) stripe(key string) *stripe {
	return &l.stripes[maphash.String(l.seed, key)%fenceStripes]
}

// token reads the generations a load of key must still see at install time.
func (l *l1[V]) token(key string) fenceToken {
	s := l.stripe(key)
	s.mu.Lock()
	g := s.gen
	s.mu.Unlock()
	return fenceToken{flush: l.flushGen.Load(), key: g}
}

// install adds e under key unless an invalidation of key, or a flush, came
// after tok was taken, or L1 is disabled.
func (l *l1[V]) install(key string, tok fenceToken, e *l1Entry[V]) bool {
	l.flushMu.RLock()
	defer l.flushMu.RUnlock()
	if !l.enabled.Load() || l.flushGen.Load() != tok.flush {
		return false
	}
	s := l.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != tok.key {
		return false
	}
	l.shard(key).lru.Add(key, e)
	return true
}

// invalidate fences in-flight loads of key and evicts it.
func (l *l1[V]) invalidate(key string) {
	s := l.stripe(key)
	s.mu.Lock()
	s.gen++
	l.shard(key).lru.Remove(key)
	s.mu.Unlock()
}

// flush fences every in-flight load and empties the LRU.
func (l *l1[V]) flush() {
	l.flushMu.Lock()
	l.flushGen.Add(1)
	for i := range l.shards {
		l.shards[i].lru.Purge()
	}
	l.flushMu.Unlock()
}
