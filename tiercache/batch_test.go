package tiercache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// manyLoader is a LoadManyFunc on s that counts its calls and keys.
type manyLoader struct {
	src   *source
	calls atomic.Int32
	keys  atomic.Int32
	hold  func(keys []string) // runs after the source was read, if set
}

func (m *manyLoader) load(ctx context.Context, keys []string) (map[string]int, error) {
	m.calls.Add(1)
	m.keys.Add(int32(len(keys)))
	out := make(map[string]int)
	for _, k := range keys {
		if v := m.src.get(k); v != 0 {
			out[k] = v
		}
	}
	if m.hold != nil {
		m.hold(keys)
	}
	return out, nil
}

func keyList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// rule 17: L1 hits, L2 hits, misses and not-founds in one call, each
// answered from its tier, the misses in one load, the not-found cached.
func TestGetManyMixed(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	for _, k := range []string{"l1", "l2", "db"} {
		src.set(k, 7)
	}
	a := newCache(t, needRedis(t), Options{Namespace: ns})
	b := newCache(t, needRedis(t), Options{Namespace: ns})
	waitReady(t, a, b)
	mustGet(t, a, "l2", src) // in L2, not in b's L1
	mustGet(t, b, "l1", src)
	m := &manyLoader{src: src}
	items, err := b.GetManyInfo(context.Background(), []string{"l1", "l2", "db", "none", "l1"}, m.load)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Source{"l1": SourceL1, "l2": SourceL2, "db": SourceLoader, "none": SourceLoader}
	if len(items) != len(want) {
		t.Fatalf("got %d items, want %d", len(items), len(want))
	}
	for k, src := range want {
		it := items[k]
		if it.Info.Source != src {
			t.Errorf("%s: source %v, want %v", k, it.Info.Source, src)
		}
		if k == "none" != errors.Is(it.Err, ErrNotFound) || (k != "none" && it.Val != 7) {
			t.Errorf("%s: got %d, %v", k, it.Val, it.Err)
		}
	}
	if m.calls.Load() != 1 || m.keys.Load() != 2 {
		t.Fatalf("loader: %d calls for %d keys, want 1 for 2", m.calls.Load(), m.keys.Load())
	}
	if !items["db"].Info.L2Stored || !items["none"].Info.L2Stored {
		t.Fatalf("loaded keys not stored in L2: %+v %+v", items["db"].Info, items["none"].Info)
	}
	vals, err := a.GetMany(context.Background(), []string{"db", "none"}, m.load)
	if err != nil || len(vals) != 1 || vals["db"] != 7 || m.calls.Load() != 1 {
		t.Fatalf("second batch on a: %v %v, %d loads; want db=7 from L2, none cached as not found", vals, err, m.calls.Load())
	}
}

// rule 17 (rules 3 and 4 per key): a write that lands while a batch's load
// is under way fences that key's fill in L1 and L2; the other keys fill.
func TestGetManyRacingWriteIsFenced(t *testing.T) {
	for _, scriptFree := range []bool{false, true} {
		t.Run(fmt.Sprintf("ScriptFreeMiss=%v", scriptFree), func(t *testing.T) { testGetManyRacingWriteIsFenced(t, scriptFree) })
	}
}

func testGetManyRacingWriteIsFenced(t *testing.T, scriptFree bool) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("a", 1)
	src.set("b", 1)
	c := newCache(t, needRedis(t), Options{Namespace: ns, ScriptFreeMiss: scriptFree})
	waitReady(t, c)
	read, resume := make(chan struct{}), make(chan struct{})
	m := &manyLoader{src: src, hold: func([]string) { close(read); <-resume }}
	done := make(chan map[string]Item[int], 1)
	go func() { items, _ := c.GetManyInfo(context.Background(), []string{"a", "b"}, m.load); done <- items }()
	<-read // the load read version 1 of both
	src.set("a", 2)
	if err := c.Invalidate(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	close(resume)
	items := <-done
	if ia := items["a"].Info; ia.L1Stored || ia.L2Stored {
		t.Fatalf("a's racing fill was stored: %+v", ia)
	}
	if ib := items["b"].Info; !ib.L1Stored || !ib.L2Stored {
		t.Fatalf("b's fill was not stored: %+v", ib)
	}
	m.hold = nil
	if v, _ := mustGet(t, c, "a", src); v != 2 {
		t.Fatalf("a after the write: got %d, want 2", v)
	}
}

// rule 17: a Get of a key whose batch fill is in flight joins it, and a
// batch joins a Get's fill: one load each time.
func TestGetManySharesLoadWithGet(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 3)
	src.set("j", 4)
	c := newCache(t, needRedis(t), Options{Namespace: ns})
	waitReady(t, c)
	read, resume := make(chan struct{}), make(chan struct{})
	m := &manyLoader{src: src, hold: func([]string) { close(read); <-resume }}
	batchDone := make(chan error, 1)
	go func() { _, err := c.GetMany(context.Background(), []string{"k"}, m.load); batchDone <- err }()
	<-read
	single := make(chan Info, 1)
	go func() { _, info := mustGet(t, c, "k", src); single <- info }()
	eventually(t, 5*time.Second, "the Get joined", func() bool { return joiners(c, "k") == 1 })
	close(resume)
	if info := <-single; !info.Collapsed || info.Source != SourceLoader {
		t.Fatalf("the Get: %+v, want collapsed into the batch's load", info)
	}
	if err := <-batchDone; err != nil || src.loads.Load() != 0 || m.calls.Load() != 1 {
		t.Fatalf("batch %v; single loads %d, batch loads %d; want 0 and 1", err, src.loads.Load(), m.calls.Load())
	}

	h := newHeldLoad(src, "j")
	go func() { _, _ = c.Get(context.Background(), "j", h.load) }()
	<-h.readDone
	got := make(chan Item[int], 1)
	go func() { items, _ := c.GetManyInfo(context.Background(), []string{"j"}, m.load); got <- items["j"] }()
	eventually(t, 5*time.Second, "the batch joined", func() bool { return joiners(c, "j") == 1 })
	h.release()
	if it := <-got; it.Val != 4 || !it.Info.Collapsed || m.calls.Load() != 1 {
		t.Fatalf("the batch: %+v, %d batch loads; want 4 from the Get's load", it, m.calls.Load())
	}
}

// joiners returns how many callers joined the fill of key in flight in c.
func joiners(c *Cache[int], key string) int {
	c.flight.mu.Lock()
	defer c.flight.mu.Unlock()
	if call, ok := c.flight.m[key]; ok {
		return call.joined
	}
	return 0
}

// rule 17 (rule 4): 100 cold keys asked at once by 3 replicas: each key
// loaded once in all, at most one loader call per replica.
func TestGetManyThreeReplicas(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	keys := keyList("k", 100)
	for _, k := range keys {
		src.set(k, 5)
	}
	var wg sync.WaitGroup
	loaders := make([]*manyLoader, 3)
	errs := make(chan error, 3)
	start := make(chan struct{})
	for i := range loaders {
		// Redis calls given time: on a starved machine a pipeline past the
		// default 100 ms L2Timeout (rightly) falls through to the loader
		// without a lease (rule 11), which is not what this test is about.
		c := newCache(t, needRedis(t), Options{Namespace: ns, LeaseWait: 30 * time.Second,
			L2Timeout: 5 * time.Second, LeaseTTL: time.Minute, LoadTimeout: time.Minute})
		waitReady(t, c)
		loaders[i] = &manyLoader{src: src}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			vals, err := c.GetMany(context.Background(), keys, loaders[i].load)
			if err == nil && len(vals) != len(keys) {
				err = errors.New("got " + strconv.Itoa(len(vals)) + " values")
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i, m := range loaders {
		if m.calls.Load() > 1 {
			t.Errorf("replica %d called its loader %d times", i, m.calls.Load())
		}
		total += int(m.keys.Load())
	}
	if total != len(keys) {
		t.Fatalf("%d keys loaded in all, want %d (each once)", total, len(keys))
	}
}

// rule 17: a loader's error or panic fails every key it was asked for and
// nothing is cached; its leases are released.
func TestGetManyLoaderFails(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	c := newCache(t, needRedis(t), Options{Namespace: ns, LeaseWait: 5 * time.Second})
	waitReady(t, c)
	boom := errors.New("boom")
	failing := func(context.Context, []string) (map[string]int, error) { return nil, boom }
	panicking := func(context.Context, []string) (map[string]int, error) { panic("loader bug") }
	for name, load := range map[string]LoadManyFunc[int]{"error": failing, "panic": panicking} {
		items, err := c.GetManyInfo(context.Background(), []string{"a", "b"}, load)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b"} {
			if e := items[k].Err; e == nil || errors.Is(e, ErrNotFound) {
				t.Fatalf("%s: %s answered %v, want the loader's failure", name, k, e)
			}
		}
		if name == "panic" && !strings.Contains(items["a"].Err.Error(), "loader bug") {
			t.Fatalf("panic: %v", items["a"].Err)
		}
	}
	if n, _ := rdb.Exists(context.Background(), c.l2.leaseKey("a"), c.l2.valueKey("a")).Result(); n != 0 {
		t.Fatalf("%d lease or value keys left after failed loads", n)
	}
	src := newSource()
	src.set("a", 1)
	m := &manyLoader{src: src}
	start := time.Now()
	vals, err := c.GetMany(context.Background(), []string{"a", "b"}, m.load)
	if err != nil || vals["a"] != 1 || len(vals) != 1 || time.Since(start) > 4*time.Second {
		t.Fatalf("after the failures: %v %v in %v; want a=1, b not found, no lease wait", vals, err, time.Since(start))
	}
}

// countHook counts the round trips a client makes (a pipeline is one).
type countHook struct{ n atomic.Int32 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// rule 17: 100 keys in L2 and cold in L1 cost one Redis round trip and no
// load.
func TestGetManyL2OneRoundTrip(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	keys := keyList("k", 100)
	for _, k := range keys {
		src.set(k, 9)
	}
	// Redis calls given time: on a starved machine an MGET past the
	// default 100 ms L2Timeout (rightly) falls through to leases and the
	// loader (rule 11), which is not what this test counts.
	slow := 10 * time.Second
	a := newCache(t, needRedis(t), Options{Namespace: ns, Standalone: true, L2Timeout: slow})
	m := &manyLoader{src: src}
	if _, err := a.GetMany(context.Background(), keys, m.load); err != nil {
		t.Fatal(err)
	}
	brdb := needRedis(t)
	hook := &countHook{}
	brdb.AddHook(hook)
	b := newCache(t, brdb, Options{Namespace: ns, Standalone: true, Mode: ModeL2Only, L2Timeout: slow})
	m2 := &manyLoader{src: src}
	hook.n.Store(0)
	vals, err := b.GetMany(context.Background(), keys, m2.load)
	if err != nil || len(vals) != 100 {
		t.Fatalf("%d values, %v", len(vals), err)
	}
	if n := hook.n.Load(); n != 1 || m2.calls.Load() != 0 {
		t.Fatalf("%d Redis round trips and %d loads, want 1 and 0", n, m2.calls.Load())
	}
}

// rule 17 (rule 13): a batch on a replica that is not caught up does not
// join a load that began more than StalenessBound before it.
func TestGetManyNoJoinOfLoadOlderThanBound(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	a := newCache(t, needRedis(t), Options{Namespace: ns})
	b := newHeldReplica(t, needRedis(t), ns)
	waitReady(t, a, b.Cache)
	eventually(t, 5*time.Second, "b caught up", func() bool { return b.bus.fresh(b.clock.Load()) })
	h := newHeldLoad(src, "k")
	first := make(chan int, 1)
	go func() { v, _ := b.Get(context.Background(), "k", h.load); first <- v }()
	<-h.readDone // the first load read version 1 and is held

	b.hold(t)
	src.set("k", 2)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	b.clock.Add(int64(b.opt.StalenessBound) + 1)
	m := &manyLoader{src: src}
	second := make(chan map[string]int, 1)
	go func() { v, _ := b.GetMany(context.Background(), []string{"k"}, m.load); second <- v }()
	select {
	case v := <-second:
		if v["k"] != 2 {
			t.Fatalf("batch after the bound: got %d, want 2", v["k"])
		}
	case <-time.After(10 * time.Second):
		h.release()
		t.Fatalf("batch after the bound joined the old load (it returned %v)", <-second)
	}
	h.release()
	if v := <-first; v != 1 {
		t.Fatalf("the first read: got %d, want 1", v)
	}
}

// rule 17 in a Cluster: keys over all three masters, read from L2 in one
// pipeline per shard, loaded once.
func TestGetManyCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	newClient := func() *redis.ClusterClient { return clusterClient(t, addrs) }
	src := newSource()
	keys := keyList("k", 30)
	for _, k := range keys[1:] {
		src.set(k, 6)
	}
	// 10 s: a pipeline past L2Timeout on a starved machine (rightly) loads.
	a := newCache(t, newClient(), Options{Namespace: "clb", L2Timeout: 10 * time.Second})
	b := newCache(t, newClient(), Options{Namespace: "clb", L2Timeout: 10 * time.Second})
	waitReady(t, a, b)
	m := &manyLoader{src: src}
	if vals, err := a.GetMany(context.Background(), keys, m.load); err != nil || len(vals) != 29 {
		t.Fatalf("a: %d values, %v", len(vals), err)
	}
	items, err := b.GetManyInfo(context.Background(), keys, m.load)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if items[k].Info.Source != SourceL2 {
			t.Fatalf("%s on b: %+v, want from L2", k, items[k])
		}
	}
	if m.calls.Load() != 1 || !errors.Is(items["k0"].Err, ErrNotFound) {
		t.Fatalf("%d loads, k0 %v; want 1 load and k0 not found", m.calls.Load(), items["k0"].Err)
	}
}

// rule 17 (rule 4): a batch that leased some of its keys loads them while
// it waits for the keys another replica holds. b leads a fill of k1 and
// holds its lease while its loader waits; a's batch of k0 and k1 leases
// k0, and b's loader returns only once a's loader has been called for
// k0. Waiting for k1 before loading k0, a would wait out LeaseWait (an
// hour) and the test its own deadline: two batches that split their keys'
// leases would each wait for the other.
func TestGetManyLoadsItsLeasesWhileWaiting(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k0", 10)
	src.set("k1", 11)
	opt := Options{Namespace: ns, LeaseWait: time.Hour, L2Timeout: 5 * time.Second, LeaseTTL: time.Hour, LoadTimeout: time.Hour}
	a, b := newCache(t, rdb, opt), newCache(t, needRedis(t), opt)
	waitReady(t, a, b)
	bLoading, aLoaded := make(chan struct{}), make(chan struct{})
	mb := &manyLoader{src: src, hold: func([]string) {
		close(bLoading)
		<-aLoaded
	}}
	bDone := make(chan error, 1)
	go func() { _, err := b.GetMany(context.Background(), []string{"k1"}, mb.load); bDone <- err }()
	<-bLoading // b holds k1's lease
	var once sync.Once
	var firstKeys []string
	ma := &manyLoader{src: src, hold: func(keys []string) {
		once.Do(func() { firstKeys = keys; close(aLoaded) })
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	items, err := a.GetManyInfo(ctx, []string{"k0", "k1"}, ma.load)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	if items["k0"].Val != 10 || items["k1"].Val != 11 || items["k1"].Info.Source != SourceL2 {
		t.Fatalf("a's batch: %+v", items)
	}
	if ma.calls.Load() != 1 || len(firstKeys) != 1 || firstKeys[0] != "k0" || mb.calls.Load() != 1 {
		t.Fatalf("a loaded %v in %d calls, b %d calls; want a loading k0 alone once, b k1", firstKeys, ma.calls.Load(), mb.calls.Load())
	}
}
