package tiercache

import (
	"fmt"
	"strconv"

	lru "github.com/hashicorp/golang-lru/v2"
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

// l1Store is one shard's map and eviction policy; golang-lru's caches are
// each safe for concurrent use behind a mutex of their own. An interface
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
	switch p {
	case PolicyLRU:
		c, err := lru.New[string, *l1Entry[V]](size)
		return lruStore[V]{c}, err
	default:
		return lru.New2Q[string, *l1Entry[V]](size)
	}
}

// lruStore adapts lru.Cache, whose Add and Remove report what they did,
// to l1Store.
type lruStore[V any] struct {
	*lru.Cache[string, *l1Entry[V]]
}

func (s lruStore[V]) Add(key string, e *l1Entry[V]) { s.Cache.Add(key, e) }

func (s lruStore[V]) Remove(key string) { s.Cache.Remove(key) }
