package tiercache

import (
	"fmt"
	"strconv"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// L1Policy selects how L1 chooses what to evict when it is full.
type L1Policy int

const (
	// PolicyDefault is the zero value: [Policy2Q].
	PolicyDefault L1Policy = iota
	// PolicyLRU evicts the least recently used entry. A scan (a crawler,
	// a walk over every list page) evicts the hot set.
	PolicyLRU
	// Policy2Q keeps entries seen twice apart from entries seen once, so a
	// scan passes through the "recent" queue without evicting the
	// "frequent" one (golang-lru's TwoQueueCache). The default: on a Zipf
	// trace it keeps 5 points more of the reads in L1 than LRU at the same
	// size, 8 with periodic scans (BenchmarkL1Policy; ARC and two
	// W-TinyLFU caches measured beside it in benchmarks/l1policy gain at
	// most one point more, for a dependency).
	Policy2Q
)

// String returns the policy's configuration name.
func (p L1Policy) String() string {
	switch p {
	case PolicyDefault:
		return "default"
	case PolicyLRU:
		return "lru"
	case Policy2Q:
		return "2q"
	}
	return "L1Policy(" + strconv.Itoa(int(p)) + ")"
}

// ParseL1Policy returns the policy named s ("lru" or "2q").
func ParseL1Policy(s string) (L1Policy, error) {
	for _, p := range []L1Policy{PolicyLRU, Policy2Q} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown L1 policy %q, want lru or 2q", errOptions, s)
}

// l1Store is one shard's map and eviction policy, safe for concurrent use
// behind a mutex of its own. Get must not keep the key it is passed (see
// twoQueue). An interface
// call costs a few nanoseconds on the hit path (BenchmarkGetL1Hit's
// policy sub-benchmarks measure it against a bare LRU Get).
type l1Store[V any] interface {
	Get(key string) (*l1Entry[V], bool)
	Add(key string, e *l1Entry[V])
	Remove(key string)
	Purge()
	Len() int
}

// newL1Store returns a store of size entries under policy p.
func newL1Store[V any](p L1Policy, size int) (l1Store[V], error) {
	if p == PolicyLRU {
		c, err := lru.New[string, *l1Entry[V]](size)
		return lruStore[V]{c}, err
	}
	return newTwoQueue[V](size)
}

// lruStore adapts lru.Cache, whose Add and Remove report what they did,
// to l1Store.
type lruStore[V any] struct {
	*lru.Cache[string, *l1Entry[V]]
}

func (s lruStore[V]) Add(key string, e *l1Entry[V]) { s.Cache.Add(key, e) }

func (s lruStore[V]) Remove(key string) { s.Cache.Remove(key) }

// twoQueue is golang-lru's 2Q (TwoQueueCache) on the same simplelru
// parts, with one difference that the hit path needs: a hit that promotes
// an entry from the recent queue to the frequent one re-inserts it under
// the key it was installed with (e.key), not the key the reader passed.
// golang-lru's Get keeps the reader's string, and a reader may pass a key
// backed by a buffer it reuses once L1 has answered (products recycles its
// keys so that an L1 hit allocates nothing): the map would then hold a key
// whose bytes change under it.
type twoQueue[V any] struct {
	mu          sync.Mutex // guards the three lists
	size        int
	recentSize  int
	recent      *simplelru.LRU[string, *l1Entry[V]]
	frequent    *simplelru.LRU[string, *l1Entry[V]]
	recentEvict *simplelru.LRU[string, struct{}] // keys evicted from recent: ghosts
}

// newTwoQueue returns a 2Q of size entries with golang-lru's default
// ratios: a quarter for entries seen once, ghosts of half as many.
func newTwoQueue[V any](size int) (*twoQueue[V], error) {
	q := &twoQueue[V]{size: size, recentSize: int(float64(size) * lru.Default2QRecentRatio)}
	var err error
	if q.recent, err = simplelru.NewLRU[string, *l1Entry[V]](size, nil); err != nil {
		return nil, err
	}
	if q.frequent, err = simplelru.NewLRU[string, *l1Entry[V]](size, nil); err != nil {
		return nil, err
	}
	q.recentEvict, err = simplelru.NewLRU[string, struct{}](max(1, int(float64(size)*lru.Default2QGhostEntries)), nil)
	return q, err
}

func (q *twoQueue[V]) Get(key string) (*l1Entry[V], bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e, ok := q.frequent.Get(key); ok {
		return e, true
	}
	if e, ok := q.recent.Peek(key); ok {
		q.recent.Remove(key)
		q.frequent.Add(e.key, e)
		return e, true
	}
	return nil, false
}

// Add installs e under key (e.key): into frequent if key was seen before
// (in either queue, or as a ghost), else into recent.
func (q *twoQueue[V]) Add(key string, e *l1Entry[V]) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.frequent.Contains(key):
		q.frequent.Add(key, e)
	case q.recent.Contains(key):
		q.recent.Remove(key)
		q.frequent.Add(key, e)
	case q.recentEvict.Contains(key):
		q.ensureSpace(true)
		q.recentEvict.Remove(key)
		q.frequent.Add(key, e)
	default:
		q.ensureSpace(false)
		q.recent.Add(key, e)
	}
}

// ensureSpace evicts one entry when full: from recent while it holds more
// than its share (its key becomes a ghost), else from frequent.
func (q *twoQueue[V]) ensureSpace(forGhost bool) {
	r, f := q.recent.Len(), q.frequent.Len()
	if r+f < q.size {
		return
	}
	if r > 0 && (r > q.recentSize || (r == q.recentSize && !forGhost)) {
		k, _, _ := q.recent.RemoveOldest()
		q.recentEvict.Add(k, struct{}{})
		return
	}
	q.frequent.RemoveOldest()
}

func (q *twoQueue[V]) Remove(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.frequent.Remove(key) && !q.recent.Remove(key) {
		q.recentEvict.Remove(key)
	}
}

func (q *twoQueue[V]) Purge() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recent.Purge()
	q.frequent.Purge()
	q.recentEvict.Purge()
}

func (q *twoQueue[V]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.recent.Len() + q.frequent.Len()
}
