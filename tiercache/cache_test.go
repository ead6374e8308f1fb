package tiercache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadThroughTiers(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	a := newCache(t, rdb, Options{Namespace: ns})
	b := newCache(t, rdb, Options{Namespace: ns})
	waitReady(t, a, b)

	steps := []struct {
		c    *Cache[int]
		want Info
	}{
		{a, Info{Source: SourceLoader, L1Stored: true, L2Stored: true}},
		{a, Info{Source: SourceL1}},
		{b, Info{Source: SourceL2, L1Stored: true}},
		{b, Info{Source: SourceL1}},
	}
	for i, s := range steps {
		v, info := mustGet(t, s.c, "k", src)
		if v != 1 || info != s.want {
			t.Fatalf("step %d: got %d %+v, want 1 %+v", i, v, info, s.want)
		}
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("loads: got %d, want 1", n)
	}
}

func TestInvalidateAcrossThreeReplicas(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	var cs []*Cache[int]
	for range 3 {
		cs = append(cs, newCache(t, needRedis(t), Options{Namespace: ns}))
	}
	waitReady(t, cs...)
	for _, c := range cs {
		mustGet(t, c, "k", src)
		if _, info := mustGet(t, c, "k", src); info.Source != SourceL1 {
			t.Fatalf("warm-up: got %v, want an L1 hit", info.Source)
		}
	}
	src.set("k", 2)
	if err := cs[0].Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	// The writer reads its own write at once.
	if v, _ := mustGet(t, cs[0], "k", src); v != 2 {
		t.Fatalf("writer: got %d, want 2", v)
	}
	for i, c := range cs[1:] {
		eventually(t, 2*time.Second, "replica sees the write", func() bool {
			v, _ := mustGet(t, c, "k", src)
			return v == 2
		})
		if c.Stats().Applied == 0 {
			t.Fatalf("replica %d: no invalidation applied", i+1)
		}
	}
	if n, _ := rdb.Exists(context.Background(), cs[0].l2.valueKey("k")).Result(); n != 1 {
		t.Fatalf("L2 holds %d values after the re-reads, want 1 (refilled)", n)
	}
}

// TestLoadRacingWriteIsFenced pauses a fill between its source read and its
// fills, lets a write and its invalidation run, then resumes it: neither L1
// nor L2 may keep the old value (docs/design.md §3.3, §3.4).
func TestLoadRacingWriteIsFenced(t *testing.T) {
	for _, scriptFree := range []bool{false, true} {
		t.Run(fmt.Sprintf("ScriptFreeMiss=%v", scriptFree), func(t *testing.T) { testLoadRacingWriteIsFenced(t, scriptFree) })
	}
}

func testLoadRacingWriteIsFenced(t *testing.T, scriptFree bool) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	c := newCache(t, rdb, Options{Namespace: ns, ScriptFreeMiss: scriptFree})
	waitReady(t, c)

	readDone, resume := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		v := src.get("k")
		close(readDone)
		<-resume
		return v, nil
	}
	info := writeDuringFill(t, c, src, load, readDone, resume)
	if info.L1Stored || info.L2Stored || !info.Fenced {
		t.Fatalf("stale fill stored or not reported fenced: %+v", info)
	}
	if n, _ := rdb.Exists(context.Background(), c.l2.valueKey("k")).Result(); n != 0 {
		t.Fatal("L2 holds the value read before the write")
	}
	if v, _ := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("after the race: got %d, want 2", v)
	}
	if s := c.Stats(); s.FencedFills != 1 || s.FencedL2Fills != 1 {
		t.Fatalf("fenced fills: got L1 %d L2 %d, want 1 and 1", s.FencedFills, s.FencedL2Fills)
	}
}

// rule 4: TestWriteBetweenLeaseCheckAndFillIsFenced pauses an L2 fill after
// it found its lease standing and before its EXEC, lets a write and its
// invalidation run, then resumes it: the WATCH on the lease makes EXEC
// write nothing, so L2 does not keep the old value (docs/design.md §3.4).
func TestWriteBetweenLeaseCheckAndFillIsFenced(t *testing.T) {
	t.Parallel()
	writeAtHookIsFenced(t, func(h *hooks, pause func()) { h.fillChecked = func(string) { pause() } })
}

// writeAtHookIsFenced runs a script-free Get of "k" whose load read
// version 1, pauses it where set puts pause, writes version 2 and
// invalidates it there, then lets the Get go on: L2 must not keep version
// 1, and the fill must count as fenced.
func writeAtHookIsFenced(t *testing.T, set func(h *hooks, pause func())) {
	t.Helper()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	paused, resume := make(chan struct{}), make(chan struct{})
	opt := Options{Namespace: ns, ScriptFreeMiss: true}
	set(&opt.hooks, func() {
		close(paused)
		<-resume
	})
	c := newCache(t, rdb, opt)
	waitReady(t, c)
	v := src.get("k") // read before the write, as a load that began before it
	load := func(context.Context) (int, error) { return v, nil }
	if info := writeDuringFill(t, c, src, load, paused, resume); info.L2Stored {
		t.Fatalf("stale fill stored in L2: %+v", info)
	}
	if n, _ := rdb.Exists(context.Background(), c.l2.valueKey("k")).Result(); n != 0 {
		t.Fatal("L2 holds the value read before the write")
	}
	if s := c.Stats(); s.FencedL2Fills != 1 {
		t.Fatalf("fenced L2 fills: got %d, want 1", s.FencedL2Fills)
	}
}

// writeDuringFill starts a Get of "k" with load, waits until paused is
// closed (the fill held at the point under test), writes version 2 and
// invalidates it, then lets the fill go on (resume) and returns its Info.
func writeDuringFill(t *testing.T, c *Cache[int], src *source, load LoadFunc[int], paused <-chan struct{}, resume chan struct{}) Info {
	t.Helper()
	got := make(chan Info, 1)
	go func() {
		_, info, _ := c.GetInfo(context.Background(), "k", load)
		got <- info
	}()
	<-paused
	src.set("k", 2)
	if err := c.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(resume)
	return <-got
}

// TestL2ReadRacingWriteIsFenced covers the other kind of load: a fill that
// read the old value from L2 just before the writer deleted it must not
// install it in L1 (docs/design.md §3.2, §3.3).
func TestL2ReadRacingWriteIsFenced(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	writer := newCache(t, rdb, Options{Namespace: ns})
	waitReady(t, writer)
	mustGet(t, writer, "k", src) // L1 and L2 hold 1
	writer.l1.flush()            // only L2 holds 1 now

	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	writer.opt.hooks.afterL2Read = func(string) {
		once.Do(func() { close(paused); <-resume })
	}
	type answer struct {
		v    int
		info Info
	}
	got := make(chan answer, 1)
	go func() {
		v, info, _ := writer.GetInfo(context.Background(), "k", src.loader("k"))
		got <- answer{v, info}
	}()
	<-paused
	src.set("k", 2)
	if err := writer.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if a := <-got; a.v != 1 || a.info.Source != SourceL2 || a.info.L1Stored || !a.info.Fenced {
		t.Fatalf("the racing read: got %d %+v, want the old 1 from L2 (it began before the write), fenced out of L1", a.v, a.info)
	}
	if v, _ := mustGet(t, writer, "k", src); v != 2 {
		t.Fatalf("after the write: got %d, want 2", v)
	}
}

// TestInvalidationOrder runs a read on the writing replica between the
// invalidation's first and second step. With L2 deleted first that read
// cannot refill L1 with the old value; with L1 evicted first it would.
func TestInvalidationOrder(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	c := newCache(t, rdb, Options{Namespace: ns})
	waitReady(t, c)
	mustGet(t, c, "k", src)
	src.set("k", 2)
	c.opt.hooks.afterL2Delete = func() { mustGet(t, c, "k", src) }
	if err := c.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	c.opt.hooks.afterL2Delete = nil
	if v, _ := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("after the write: got %d, want 2", v)
	}
}

func TestNoL1BeforeSubscription(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	release := make(chan struct{})
	opt := Options{Namespace: ns}
	opt.hooks.beforeSubscribe = func() { <-release }
	c := newCache(t, rdb, opt)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	for i := range 3 {
		if _, info := mustGet(t, c, "k", src); info.Source == SourceL1 || info.L1Stored {
			t.Fatalf("get %d before subscribing: used L1 (%+v)", i, info)
		}
	}
	if c.Ready() {
		t.Fatal("Ready before the subscription was confirmed")
	}
	close(release)
	waitReady(t, c)
	mustGet(t, c, "k", src)
	if _, info := mustGet(t, c, "k", src); info.Source != SourceL1 {
		t.Fatalf("after subscribing: got %v, want an L1 hit", info.Source)
	}
}

func TestNegativeCaching(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	a := newCache(t, rdb, Options{Namespace: ns})
	b := newCache(t, needRedis(t), Options{Namespace: ns})
	waitReady(t, a, b)
	ctx := context.Background()
	for i, want := range []Info{
		{Source: SourceLoader, Negative: true, L1Stored: true, L2Stored: true},
		{Source: SourceL1, Negative: true},
	} {
		_, info, err := a.GetInfo(ctx, "k", src.loader("k"))
		if !errors.Is(err, ErrNotFound) || info != want {
			t.Fatalf("get %d: got %v %+v, want ErrNotFound %+v", i, err, info, want)
		}
	}
	if _, info, err := b.GetInfo(ctx, "k", src.loader("k")); !errors.Is(err, ErrNotFound) || info.Source != SourceL2 {
		t.Fatalf("other replica: got %v from %v, want ErrNotFound from L2", err, info.Source)
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("loads: got %d, want 1", n)
	}
	src.set("k", 7) // the create
	if err := a.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, _ := mustGet(t, a, "k", src); v != 7 {
		t.Fatalf("creator after create: got %d, want 7", v)
	}
	eventually(t, 2*time.Second, "other replica sees the create", func() bool {
		v, err := b.Get(ctx, "k", src.loader("k"))
		return err == nil && v == 7
	})
}

func TestErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb)})
	waitReady(t, c)
	boom := errors.New("boom")
	calls := 0
	load := func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, boom
		}
		return 5, nil
	}
	if _, err := c.Get(context.Background(), "k", load); !errors.Is(err, boom) {
		t.Fatalf("first get: got %v, want boom", err)
	}
	if v, err := c.Get(context.Background(), "k", load); err != nil || v != 5 {
		t.Fatalf("second get: got %d %v, want 5 <nil>", v, err)
	}
	if s := c.Stats(); s.LoadErrors != 1 || s.Loads != 2 {
		t.Fatalf("stats: got %d loads %d errors, want 2 and 1", s.Loads, s.LoadErrors)
	}
}

func TestGroupInvalidation(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("page1", 1)
	src.set("page2", 1)
	a := newCache(t, rdb, Options{Namespace: ns})
	b := newCache(t, needRedis(t), Options{Namespace: ns})
	waitReady(t, a, b)
	ctx := context.Background()
	get := func(c *Cache[int], k string) (int, Info) {
		v, info, err := c.GetInfo(ctx, k, src.loader(k), InGroup("list"))
		if err != nil {
			t.Fatal(err)
		}
		return v, info
	}
	for _, c := range []*Cache[int]{a, b} {
		for _, k := range []string{"page1", "page2"} {
			get(c, k)
			if _, info := get(c, k); info.Source != SourceL1 {
				t.Fatalf("warm-up %s: got %v, want L1", k, info.Source)
			}
		}
	}
	src.set("page1", 2)
	src.set("page2", 2)
	var cmds atomic.Int64
	rdb.AddHook(countingHook{&cmds})
	if err := a.InvalidateGroup(ctx, "list"); err != nil {
		t.Fatal(err)
	}
	if n := cmds.Load(); n != 2 {
		t.Fatalf("round trips for a group invalidation: got %d, want 2 (one pipeline, one publish)", n)
	}
	for _, k := range []string{"page1", "page2"} {
		if v, _ := get(a, k); v != 2 {
			t.Fatalf("writer %s: got %d, want 2", k, v)
		}
		eventually(t, 2*time.Second, "other replica sees the new "+k, func() bool {
			v, _ := get(b, k)
			return v == 2
		})
	}
}

// TestStampede sends 1,000 concurrent Gets of one cold key to each of three
// replicas: the loader runs once. The loader holds until both other replicas
// are waiting on its lease, so every one of them has met the cold key.
func TestStampede(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	var cs []*Cache[int]
	for range 3 {
		// 3,000 goroutines on two cores under -race: give Redis calls time,
		// or a timed-out read would (rightly) fall through to the loader,
		// and give the lease and the load as long as the loader may wait
		// for the others, or the lease would (rightly) pass to another.
		cs = append(cs, newCache(t, needRedis(t), Options{Namespace: ns, LeaseWait: 30 * time.Second,
			L2Timeout: 5 * time.Second, LeaseTTL: time.Minute, LoadTimeout: time.Minute}))
	}
	waitReady(t, cs...)
	var loads atomic.Int64
	load := func(ctx context.Context) (int, error) {
		loads.Add(1)
		ok := poll(30*time.Second, func() bool { // no timing asserted: a bound for a hung test
			var w uint64
			for _, c := range cs {
				w += c.Stats().LeaseWaits
			}
			return w >= 2
		})
		if !ok {
			return 0, errors.New("the other replicas never waited on the lease")
		}
		return 42, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3000)
	for _, c := range cs {
		for range 1000 {
			wg.Go(func() {
				v, err := c.Get(context.Background(), "cold", load)
				if err == nil && v != 42 {
					err = errors.New("wrong value")
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("loader calls: got %d, want 1", n)
	}
}

func TestMalformedAndOwnMessages(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	got := make(chan string, 10)
	opt := Options{Namespace: ns, ReplicaID: "b"}
	opt.hooks.onMessage = func(s string, _ []string) { got <- s }
	b := newCache(t, rdb, opt)
	waitReady(t, b)
	mustGet(t, b, "k", src)
	ctx := context.Background()
	ch := ns + ":inval"
	for _, p := range []string{`nonsense`, `{"v":2,"src":"x","seq":1,"keys":["k"]}`, `{"v":1,"keys":["k"]}`} {
		rdb.Publish(ctx, ch, p)
	}
	rdb.Publish(ctx, ch, `{"v":1,"src":"b","inc":"`+b.bus.inc+`","seq":1,"keys":["k"]}`) // its own: ignored
	rdb.Publish(ctx, ch, `{"v":1,"src":"other","seq":1,"keys":["x"]}`)                   // a marker
	if s := <-got; s != "other" {
		t.Fatalf("applied message from %q, want only the marker", s)
	}
	st := b.Stats()
	if st.Malformed != 3 || st.OwnSkipped != 1 || st.Applied != 1 {
		t.Fatalf("got malformed %d own %d applied %d, want 3 1 1", st.Malformed, st.OwnSkipped, st.Applied)
	}
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("entry lost to ignored messages: got %v, want L1", info.Source)
	}
	// A gap in a publisher's sequence means a lost message: flush L1.
	rdb.Publish(ctx, ch, `{"v":1,"src":"other","seq":3,"keys":["x"]}`)
	<-got
	if _, info := mustGet(t, b, "k", src); info.Source == SourceL1 {
		t.Fatal("L1 kept its entries across a sequence gap")
	}
	if st := b.Stats(); st.Gaps != 1 {
		t.Fatalf("gaps: got %d, want 1", st.Gaps)
	}
}

func TestL1MaxAge(t *testing.T) {
	t.Parallel()
	src := newSource()
	src.set("k", 1)
	var now atomic.Int64
	now.Store(1)
	opt := Options{Mode: ModeL1Only, L1TTL: time.Second, Jitter: -1}
	opt.hooks.now = now.Load
	c := newCache(t, nil, opt)
	mustGet(t, c, "k", src)
	src.set("k", 2) // a write nobody announced
	now.Add(int64(time.Second) - 1)
	if v, info := mustGet(t, c, "k", src); v != 1 || info.Source != SourceL1 {
		t.Fatalf("just inside the bound: got %d from %v, want 1 from L1", v, info.Source)
	}
	now.Add(1)
	if v, _ := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("at the bound: got %d, want 2", v)
	}
}

func TestCallerContextDoesNotCancelSharedLoad(t *testing.T) {
	t.Parallel()
	c := newCache(t, nil, Options{Mode: ModeL1Only})
	started, release := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		close(started)
		<-release
		return 3, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "k", load); first <- err }()
	<-started
	second := make(chan int, 1)
	go func() { v, _ := c.Get(context.Background(), "k", load); second <- v }()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient caller: got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-second; v != 3 {
		t.Fatalf("patient caller: got %d, want 3", v)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"negative size", Options{Mode: ModeL1Only, L1Size: -1}},
		{"negative ttl", Options{Mode: ModeL1Only, L1TTL: -time.Second}},
		{"jitter", Options{Mode: ModeL1Only, Jitter: 1.5}},
		{"unknown mode", Options{Mode: 9}},
		{"l1 ttl above l2", Options{L1TTL: 2 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New[int](nil, nil, tc.opt); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
	if _, err := New[int](nil, nil, Options{}); err == nil {
		t.Fatal("tiered without a Redis client: got nil error")
	}
}

// TestConcurrentWritesAreNoGap sends invalidations from many goroutines of
// one replica at once: the other replica must see them in sequence, not take
// overtaking messages for lost ones and flush its L1.
func TestConcurrentWritesAreNoGap(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	got := make(chan []string, 1000)
	optB := Options{Namespace: ns}
	optB.hooks.onMessage = func(_ string, keys []string) { got <- keys }
	a := newCache(t, needRedis(t), Options{Namespace: ns})
	b := newCache(t, needRedis(t), optB)
	waitReady(t, a, b)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if err := a.Invalidate(context.Background(), "k"+strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for len(seen) < 200 {
		select {
		case keys := <-got:
			for _, k := range keys {
				seen[k] = true
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 200 keys arrived", len(seen))
		}
	}
	if s := b.Stats(); s.Gaps != 0 || s.Flushes != 1 {
		t.Fatalf("got %d gaps and %d flushes, want 0 and 1 (the one at subscription)", s.Gaps, s.Flushes)
	}
}

// TestGroupsWithoutChannel covers the replicas no message reaches: in
// ModeL2Only there is no channel, and a tiered replica whose subscription is
// down misses messages. Both must still see another replica's group bump at
// once, or they would read a stale page that L2 keeps for its TTL.
func TestGroupsWithoutChannel(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ctx := context.Background()
	run := func(t *testing.T, a, b *Cache[int], src *source) {
		t.Helper()
		get := func(c *Cache[int]) int {
			v, err := c.Get(ctx, "page", src.loader("page"), InGroup("list"))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		get(a)
		if v := get(b); v != 1 {
			t.Fatalf("before the write: got %d, want 1", v)
		}
		src.set("page", 2)
		if err := a.InvalidateGroup(ctx, "list"); err != nil {
			t.Fatal(err)
		}
		if v := get(b); v != 2 {
			t.Fatalf("right after the write: got %d, want 2", v)
		}
	}
	t.Run("l2 only", func(t *testing.T) {
		ns := namespace(t, rdb)
		src := newSource()
		src.set("page", 1)
		a := newCache(t, needRedis(t), Options{Namespace: ns, Mode: ModeL2Only})
		b := newCache(t, needRedis(t), Options{Namespace: ns, Mode: ModeL2Only})
		run(t, a, b, src)
	})
	t.Run("channel down", func(t *testing.T) {
		ns := namespace(t, rdb)
		src := newSource()
		src.set("page", 1)
		hold := make(chan struct{})
		defer close(hold)
		optB := Options{Namespace: ns}
		optB.hooks.beforeSubscribe = func() { <-hold } // b never subscribes
		a := newCache(t, needRedis(t), Options{Namespace: ns})
		b := newCache(t, needRedis(t), optB)
		waitReady(t, a)
		run(t, a, b, src)
	})
}

// TestNotReadyAfterClose: a closed cache answers every call with
// ErrClosed, so it must not report itself ready (a readiness probe would
// keep sending traffic to it).
func TestNotReadyAfterClose(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb)})
	waitReady(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.Ready() {
		t.Fatal("Ready after Close: got true, want false")
	}
}
