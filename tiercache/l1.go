package tiercache

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// fenceStripes is the number of generation counters keys are hashed onto.
// Two keys sharing a stripe only cost a spurious fenced fill, never a stale
// one.
const fenceStripes = 1024

// l1 is the in-process tier: an LRU of ready-to-serve entries plus the fence
// that keeps loads which raced an invalidation out of it.
type l1[V any] struct {
	lru     *lru.Cache[string, *l1Entry[V]]
	enabled atomic.Bool // false while the invalidation channel is down
	seed    maphash.Seed

	// flushMu is held shared by installs and exclusively by flushes, so no
	// install that checked the flush generation can land after the purge.
	flushMu  sync.RWMutex
	flushGen atomic.Uint64
	stripes  [fenceStripes]stripe
}

type stripe struct {
	mu  sync.Mutex // orders installs against invalidations of its keys
	gen uint64     // guarded by mu
}

type l1Entry[V any] struct {
	val     V
	neg     bool
	expires int64 // unix nanoseconds on the coarse clock
}

// fenceToken is the generation a load saw before it started.
type fenceToken struct {
	flush uint64
	key   uint64
}

func newL1[V any](size int) (*l1[V], error) {
	c, err := lru.New[string, *l1Entry[V]](size)
	if err != nil {
		return nil, err
	}
	return &l1[V]{lru: c, seed: maphash.MakeSeed()}, nil
}

func (l *l1[V]) usable() bool { return l.enabled.Load() }

func (l *l1[V]) enable(on bool) { l.enabled.Store(on) }

// get returns a live entry. An expired entry is removed; that bounds how long
// any value, however it got there, is served.
func (l *l1[V]) get(key string, now int64) (*l1Entry[V], bool) {
	e, ok := l.lru.Get(key)
	if !ok {
		return nil, false
	}
	if now >= e.expires {
		l.lru.Remove(key)
		return nil, false
	}
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
	l.lru.Add(key, e)
	return true
}

// invalidate fences in-flight loads of key and evicts it.
func (l *l1[V]) invalidate(key string) {
	s := l.stripe(key)
	s.mu.Lock()
	s.gen++
	l.lru.Remove(key)
	s.mu.Unlock()
}

// flush fences every in-flight load and empties the LRU.
func (l *l1[V]) flush() {
	l.flushMu.Lock()
	l.flushGen.Add(1)
	l.lru.Purge()
	l.flushMu.Unlock()
}
