package tiercache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// history records, per key, every acknowledged write: its version, when the
// writer's Invalidate returned, and through which replica.
type history struct {
	mu   sync.Mutex
	acks map[string][]ack // guarded by mu
}

type ack struct {
	version int
	at      time.Time
	replica int
}

func (h *history) add(key string, a ack) {
	h.mu.Lock()
	h.acks[key] = append(h.acks[key], a)
	h.mu.Unlock()
}

// required returns the newest version a read of key through replica that
// began at start must see: every write acknowledged through the same replica
// before start, and every write acknowledged anywhere more than bound before
// start.
func (h *history) required(key string, replica int, start time.Time, bound time.Duration) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	need := 0
	for _, a := range h.acks[key] {
		if a.at.Before(start) && (a.replica == replica || start.Sub(a.at) > bound) {
			need = max(need, a.version)
		}
	}
	return need
}

// latest returns the newest acknowledged write before start, for reporting
// how stale a read was allowed to be.
func (h *history) latestBefore(key string, start time.Time) (ack, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best ack
	found := false
	for _, a := range h.acks[key] {
		if a.at.Before(start) && a.version > best.version {
			best, found = a, true
		}
	}
	return best, found
}

// TestRandomizedConsistency runs 100,000 operations, concurrent reads and
// versioned writes through three replicas, and checks every read against
// the writes acknowledged before it began: never older than a write through
// the same replica, and never older than any write acknowledged more than
// the lag bound earlier. At quiescence every replica returns the newest
// version of every key.
func TestRandomizedConsistency(t *testing.T) {
	t.Parallel()
	const (
		ops      = 100_000
		keys     = 64
		workers  = 4 // per replica
		lagBound = time.Second
	)
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	var keyMu [keys]sync.Mutex
	name := func(i int) string { return fmt.Sprintf("key%d", i) }
	var cs []*Cache[int]
	for range 3 {
		// The test is about the ordering logic, not about Redis timeouts
		// (fault tests cover those), and a loaded two-core machine under
		// -race can stall a Redis call past the 100ms default.
		cs = append(cs, newCache(t, needRedis(t), Options{Namespace: ns, L1Size: keys / 2,
			L2Timeout: 5 * time.Second, WriteTimeout: 5 * time.Second, BreakerThreshold: 1 << 20}))
	}
	waitReady(t, cs...)
	h := &history{acks: make(map[string][]ack)}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var worstLate time.Duration
	perWorker := ops / (len(cs) * workers)
	for r, c := range cs {
		for w := range workers {
			rng := rand.New(rand.NewPCG(uint64(r), uint64(w)))
			wg.Go(func() {
				ctx := context.Background()
				for range perWorker {
					k := rng.IntN(keys)
					key := name(k)
					if rng.IntN(10) == 0 {
						keyMu[k].Lock()
						v := src.get(key) + 1
						src.set(key, v) // the commit
						keyMu[k].Unlock()
						if err := c.Invalidate(ctx, key); err != nil && !errors.Is(err, ErrDeferred) {
							mu.Lock()
							failures = append(failures, err.Error())
							mu.Unlock()
						}
						h.add(key, ack{version: v, at: time.Now(), replica: r})
						continue
					}
					start := time.Now()
					v, err := c.Get(ctx, key, src.loader(key))
					if err != nil && err != ErrNotFound {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
						continue
					}
					if need := h.required(key, r, start, lagBound); v < need {
						mu.Lock()
						a, _ := h.latestBefore(key, start)
						st := c.Stats()
						failures = append(failures, fmt.Sprintf("replica %d read %s=%d, want >= %d (newest ack v%d through replica %d, %v before the read; breaker opens %d, retry queue %d, l2 errors %d)",
							r, key, v, need, a.version, a.replica, start.Sub(a.at), st.BreakerOpens, st.RetryQueued, st.L2Errors))
						mu.Unlock()
					} else if a, ok := h.latestBefore(key, start); ok && v < a.version {
						mu.Lock()
						worstLate = max(worstLate, start.Sub(a.at))
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d consistency failures, first: %s", len(failures), failures[0])
	}
	t.Logf("worst tolerated staleness (other replicas, within the %v bound): %v", lagBound, worstLate)
	for k := range keys {
		key := name(k)
		want := src.get(key)
		for r, c := range cs {
			eventually(t, 2*time.Second, fmt.Sprintf("replica %d converges on %s", r, key), func() bool {
				v, _ := c.Get(context.Background(), key, src.loader(key))
				return v == want
			})
		}
	}
	var applied uint64
	for _, c := range cs {
		applied += c.Stats().Applied
	}
	if applied == 0 {
		t.Fatal("no invalidation crossed replicas: the test exercised nothing")
	}
}

// TestCloseLeavesNoGoroutines checks that Close stops the subscriber, the
// retry loop and the clock.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
	for _, opt := range []Options{{Namespace: ns}, {Namespace: ns, Mode: ModeL2Only}, {Mode: ModeL1Only}} {
		c, err := New[int](rdb, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		if opt.Mode == ModeTiered {
			waitReady(t, c)
		}
		src := newSource()
		src.set("k", 1)
		mustGet(t, c, "k", src)
		if err := c.Invalidate(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(context.Background(), "k", src.loader("k")); err != ErrClosed {
			t.Fatalf("Get after Close: got %v, want ErrClosed", err)
		}
	}
}
