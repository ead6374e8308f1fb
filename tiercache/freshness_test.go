package tiercache

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// gate holds the subscriber goroutine that calls wait while it is closed.
type gate struct {
	closed  atomic.Bool
	release chan struct{}
	held    chan struct{} // one signal each time wait starts holding
}

func newGate() *gate { return &gate{release: make(chan struct{}), held: make(chan struct{}, 1)} }

func (g *gate) wait() {
	if !g.closed.Load() {
		return
	}
	select {
	case g.held <- struct{}{}:
	default:
	}
	<-g.release
}

func (g *gate) close() { g.closed.Store(true) }

func (g *gate) open() {
	if g.closed.Swap(false) {
		close(g.release)
	}
}

// heldReplica is a replica on a fake clock whose subscriber can be held.
type heldReplica struct {
	*Cache[int]
	clock *atomic.Int64
	gate  *gate
}

func newHeldReplica(t *testing.T, rdb redis.UniversalClient, ns string, adjust ...func(*Options)) heldReplica {
	t.Helper()
	r := heldReplica{clock: new(atomic.Int64), gate: newGate()}
	r.clock.Store(int64(time.Hour))
	opt := Options{Namespace: ns}
	opt.hooks.now = r.clock.Load
	opt.hooks.beforeApply = r.gate.wait
	opt.hooks.neverIdle = true // these tests are about an active replica's lapses
	for _, f := range adjust {
		f(&opt)
	}
	r.Cache = newCache(t, rdb, opt)
	t.Cleanup(r.gate.open)
	return r
}

// hold stops the subscriber from applying anything and waits until it is
// stopped.
func (r heldReplica) hold(t *testing.T) {
	t.Helper()
	r.gate.close()
	select {
	case <-r.gate.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber never reached the gate")
	}
}

// rule 13: while a replica cannot prove it is caught up (its subscriber is
// held, as CPU starvation or a slow Redis would hold it), reads bypass L1
// once StalenessBound has passed, and L1 serves again, without a flush,
// once the subscriber catches up.
func TestLapseBypassesL1WithoutFlush(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	src.set("other", 1)
	a := newCache(t, needRedis(t), Options{Namespace: ns})
	b := newHeldReplica(t, needRedis(t), ns)
	waitReady(t, a, b.Cache)
	eventually(t, 5*time.Second, "b caught up", func() bool { return b.bus.fresh(b.clock.Load()) })
	for _, k := range []string{"k", "other"} {
		mustGet(t, b.Cache, k, src)
		if _, info := mustGet(t, b.Cache, k, src); info.Source != SourceL1 {
			t.Fatalf("warm-up %s: got %v, want L1", k, info.Source)
		}
	}
	flushes := b.Stats().Flushes

	b.hold(t)
	src.set("k", 2)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	// Within the bound b may still serve what it has.
	b.clock.Add(int64(b.opt.StalenessBound))
	if _, info := mustGet(t, b.Cache, "other", src); info.Source != SourceL1 {
		t.Fatalf("at the bound: got %v, want L1", info.Source)
	}
	b.clock.Add(1)
	if v, info := mustGet(t, b.Cache, "k", src); v != 2 || info.Source == SourceL1 {
		t.Fatalf("past the bound: got %d from %v, want 2 not from L1", v, info.Source)
	}
	if _, info := mustGet(t, b.Cache, "other", src); info.Source == SourceL1 {
		t.Fatal("past the bound: an L1 hit for an unwritten key; L1 must be bypassed")
	}
	if s := b.Stats(); s.L1BypassStale == 0 || s.FreshnessLapses != 1 || s.FreshnessAge <= b.opt.StalenessBound {
		t.Fatalf("stats: got bypass %d lapses %d age %v, want >0, 1, > the bound", s.L1BypassStale, s.FreshnessLapses, s.FreshnessAge)
	}

	b.gate.open()
	eventually(t, 5*time.Second, "L1 serves again", func() bool {
		_, info := mustGet(t, b.Cache, "other", src)
		return info.Source == SourceL1
	})
	if v, _ := mustGet(t, b.Cache, "k", src); v != 2 {
		t.Fatalf("after catching up: got %d, want 2", v)
	}
	if s := b.Stats(); s.Flushes != flushes {
		t.Fatalf("flushes: got %d, want %d (a lapse must not flush)", s.Flushes, flushes)
	}
}

// rule 13: a read on a replica that is not caught up does not join a load
// that began more than StalenessBound before it: that load may have read
// the row before a write the reader must see.
func TestNoJoinOfLoadOlderThanBound(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	a := newCache(t, needRedis(t), Options{Namespace: ns})
	b := newHeldReplica(t, needRedis(t), ns)
	waitReady(t, a, b.Cache)
	eventually(t, 5*time.Second, "b caught up", func() bool { return b.bus.fresh(b.clock.Load()) })

	var calls atomic.Int32
	readDone, resume := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		v := src.get("k")
		if calls.Add(1) == 1 {
			close(readDone)
			<-resume
		}
		return v, nil
	}
	first := make(chan int, 1)
	go func() { v, _ := b.Get(context.Background(), "k", load); first <- v }()
	<-readDone // the first load read version 1 and is held

	b.hold(t)
	src.set("k", 2)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(int64(b.opt.StalenessBound) + 1)
	second := make(chan int, 1)
	go func() { v, _ := b.Get(context.Background(), "k", load); second <- v }()
	select {
	case v := <-second:
		if v != 2 {
			t.Fatalf("read after the bound: got %d, want 2", v)
		}
	case <-time.After(10 * time.Second):
		close(resume)
		t.Fatalf("read after the bound joined the old load (it returned %d)", <-second)
	}
	close(resume)
	if v := <-first; v != 1 {
		t.Fatalf("the first read: got %d, want 1 (it began before the write)", v)
	}
}

// ackLog records acknowledged writes per key, in order.
type ackLog struct {
	mu   sync.Mutex
	acks map[string][]ack // guarded by mu
}

// newest returns the highest version of key acknowledged before t.
func (l *ackLog) newest(key string, before time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	as := l.acks[key]
	i := sort.Search(len(as), func(i int) bool { return !as[i].at.Before(before) })
	if i == 0 {
		return 0
	}
	return as[i-1].version
}

func (l *ackLog) add(key string, a ack) {
	l.mu.Lock()
	l.acks[key] = append(l.acks[key], a)
	l.mu.Unlock()
}

// rule 13: Redis stalls for 2 s (DEBUG SLEEP) under concurrent writes and
// reads across three replicas. The invalidation channel stays connected but
// delivers nothing; no read returns a version older than one acknowledged
// more than StalenessBound before it began.
func TestRedisStallNoStaleReads(t *testing.T) {
	t.Parallel()
	srv := testenv.NewRedisServer(t)
	srv.Args = []string{"--enable-debug-command", "local"}
	srv.Start()
	admin := dialRedis(t, &redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second})
	// The client must wait as long as an invalidation may (WriteTimeout):
	// reads are bounded by their own contexts.
	client := func() *redis.Client {
		return dialRedis(t, &redis.Options{Addr: srv.Addr(), ReadTimeout: 6 * time.Second, WriteTimeout: 6 * time.Second})
	}
	const keys = 20
	src := newSource()
	var cs []*Cache[int]
	for range 3 {
		cs = append(cs, newCache(t, client(), Options{Namespace: "stall", StalenessBound: 25 * time.Millisecond, L2Timeout: 50 * time.Millisecond,
			BreakerCooldown: 50 * time.Millisecond, RetryInterval: 20 * time.Millisecond}))
	}
	waitReady(t, cs...)
	var keyMu [keys]sync.Mutex
	for k := range keys {
		src.set("k"+strconv.Itoa(k), 1)
	}
	acks := &ackLog{acks: make(map[string][]ack)}
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, writes, stale atomic.Int64
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(keys)
				key := "k" + strconv.Itoa(k)
				keyMu[k].Lock()
				v := src.get(key) + 1
				src.set(key, v)
				_ = cs[rng.IntN(len(cs))].Invalidate(ctx, key)
				acks.add(key, ack{version: v, at: time.Now()})
				keyMu[k].Unlock()
				writes.Add(1)
				time.Sleep(2 * time.Millisecond) // pacing, not synchronisation
			}
		})
	}
	for r := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				key := "k" + strconv.Itoa(rng.IntN(keys))
				start := time.Now()
				v, err := cs[rng.IntN(len(cs))].Get(ctx, key, src.loader(key))
				if err != nil {
					t.Errorf("read %s: %v", key, err)
					return
				}
				reads.Add(1)
				if want := acks.newest(key, start.Add(-cs[0].opt.StalenessBound)); v < want {
					stale.Add(1)
					t.Errorf("stale read of %s: got version %d, want at least %d (acknowledged more than the bound before the read began)", key, v, want)
				}
			}
		})
	}
	eventually(t, 10*time.Second, "traffic before the stall", func() bool { return reads.Load() > 300 && writes.Load() > 30 })
	if err := admin.Do(ctx, "DEBUG", "SLEEP", "2").Err(); err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	before, readsBefore := writes.Load(), reads.Load()
	eventually(t, 10*time.Second, "traffic after the stall", func() bool {
		return reads.Load() > readsBefore+300 && writes.Load() > before+30
	})
	close(stop)
	wg.Wait()
	var lapses uint64
	for _, c := range cs {
		lapses += c.Stats().FreshnessLapses
	}
	t.Logf("%d reads, %d writes (%d after the stall), %d stale, %d lapses", reads.Load(), writes.Load(), writes.Load()-before, stale.Load(), lapses)
	if lapses == 0 {
		t.Fatal("no replica lapsed during a 2s stall: the test proved nothing")
	}
}

// rule 13, on demand: a replica no read consults stops proving its
// freshness every 5ms (an idle replica would spend several percent of a
// core on it) and pings only for liveness. The first read wakes it: it
// bypasses L1, counted as waking, not as a lapse, until the proof is back,
// and then L1 serves again.
func TestIdleReplicaProvesFreshnessOnDemand(t *testing.T) {
	t.Parallel()
	c, src := leasedCache(t)
	mustGet(t, c, "k", src)
	eventually(t, 5*time.Second, "the pinger idles", c.bus.idle.Load)
	idle := c.Stats() // a starved pinger may have lapsed before it idled: that was real
	eventually(t, 5*time.Second, "the proof grows old", func() bool { return !c.bus.fresh(c.clockNow()) })
	before := c.Stats()
	if before.FreshnessLapses != idle.FreshnessLapses || before.L1BypassStale != idle.L1BypassStale {
		t.Fatalf("an idle replica counted %d lapses, %d stale bypasses while idle; want 0: it was not asked to keep up",
			before.FreshnessLapses-idle.FreshnessLapses, before.L1BypassStale-idle.L1BypassStale)
	}
	pings := before.FreshnessPings
	if _, info := mustGet(t, c, "k", src); info.Source == SourceL1 {
		t.Fatal("an idle replica served from L1 without a recent proof")
	}
	// The first read is counted as waking, not stale: only reads count
	// bypasses, and this was the only one. (Lapses the pinger may count
	// from here on are real: a starved machine can keep the next answer
	// from coming within the bound, and the guarantee makes that cost L1
	// hits, which is what a lapse counts.)
	if s := c.Stats(); s.L1BypassWaking != before.L1BypassWaking+1 || s.L1BypassStale != before.L1BypassStale {
		t.Fatalf("the first read after idling: got waking +%d, stale +%d; want +1, +0", s.L1BypassWaking-before.L1BypassWaking, s.L1BypassStale-before.L1BypassStale)
	}
	eventually(t, 5*time.Second, "L1 serves again", func() bool {
		_, info := mustGet(t, c, "k", src)
		return info.Source == SourceL1
	})
	s := c.Stats()
	if s.FreshnessPings == pings {
		t.Fatal("the read did not wake the pinger")
	}
}

// TestGetAtFreshnessCountedFromStart: GetAt checks the freshness lease as
// of the start it is given, not of its own clock: a start later than the
// newest proof allows bypasses L1 as stale, and a start without a monotonic
// reading is ignored for the cache's own clock.
func TestGetAtFreshnessCountedFromStart(t *testing.T) {
	t.Parallel()
	c, src := leasedCache(t)
	ctx := context.Background()
	getAt := func(start time.Time) Info {
		t.Helper()
		v, info, err := c.GetInfoAt(ctx, start, "k", src.loader("k"))
		if err != nil || v != 1 {
			t.Fatalf("GetInfoAt: %d, %v; want 1", v, err)
		}
		return info
	}
	eventually(t, 5*time.Second, "L1 serves GetAt of now", func() bool { return getAt(time.Now()).Source == SourceL1 })
	late := time.Now().Add(time.Minute) // no proof is that young yet
	before := c.Stats()
	if info := getAt(late); info.Source == SourceL1 {
		t.Fatal("GetAt served L1 at a start the newest proof is more than the bound older than")
	}
	// One bypass, counted as stale, or as waking when the pinger went idle
	// since the last read (no read for a while: a starved machine can
	// take that long between two lines of this test).
	s := c.Stats()
	if stale, waking := s.L1BypassStale-before.L1BypassStale, s.L1BypassWaking-before.L1BypassWaking; stale+waking != 1 {
		t.Fatalf("bypasses: stale +%d, waking +%d; want one in all", stale, waking)
	}
	eventually(t, 5*time.Second, "a start without a monotonic reading is ignored", func() bool {
		return getAt(late.Round(0)).Source == SourceL1
	})
}

// leasedCache is a ready cache on the shared Redis with the default 25ms
// StalenessBound, and a source holding k = 1.
func leasedCache(t *testing.T) (*Cache[int], *source) {
	t.Helper()
	rdb := needRedis(t)
	src := newSource()
	src.set("k", 1)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb), StalenessBound: 25 * time.Millisecond})
	waitReady(t, c)
	return c, src
}
