package tiercache

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heldLoad is a loader whose first call reads its source, reports it, and
// waits to be released; later calls read and return at once.
type heldLoad struct {
	src      *source
	key      string
	calls    atomic.Int32
	readDone chan struct{}
	resume   chan struct{}
	once     sync.Once
}

func newHeldLoad(src *source, key string) *heldLoad {
	return &heldLoad{src: src, key: key, readDone: make(chan struct{}), resume: make(chan struct{})}
}

func (h *heldLoad) load(ctx context.Context) (int, error) {
	v := h.src.get(h.key)
	if h.calls.Add(1) == 1 {
		close(h.readDone)
		<-h.resume
	}
	return v, nil
}

func (h *heldLoad) release() { h.once.Do(func() { close(h.resume) }) }

// rule 6 (and rule 3): a flush, here for a sequence gap, fences the
// fill in flight (it may have read the row before a write whose message was
// lost) and makes later readers start a new load instead of joining it.
func TestFlushFencesAndForgetsFillInFlight(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	gaps := make(chan struct{}, 10)
	b := newHeldReplica(t, needRedis(t), ns, func(o *Options) {
		o.hooks.onMessage = func(string, []string) { gaps <- struct{}{} }
	})
	waitReady(t, b.Cache)
	h := newHeldLoad(src, "k")
	defer h.release()
	first := make(chan Info, 1)
	go func() { _, info, _ := b.GetInfo(context.Background(), "k", h.load); first <- info }()
	<-h.readDone // the fill read version 1 and holds its lease

	// A write whose L2 delete happened but whose message was lost.
	src.set("k", 2)
	ctx := context.Background()
	if err := rdb.Del(ctx, b.l2.valueKey("k"), b.l2.leaseKey("k")).Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{`{"v":1,"src":"x","seq":1}`, `{"v":1,"src":"x","seq":3}`} {
		if err := rdb.Publish(ctx, ns+":inval", m).Err(); err != nil {
			t.Fatal(err)
		}
		<-gaps
	}
	if s := b.Stats(); s.Gaps != 1 {
		t.Fatalf("gaps: got %d, want 1", s.Gaps)
	}
	second := make(chan int, 1)
	go func() { v, _ := b.Get(ctx, "k", h.load); second <- v }()
	select {
	case v := <-second:
		if v != 2 {
			t.Fatalf("read after the flush: got %d, want 2", v)
		}
	case <-time.After(10 * time.Second):
		h.release()
		t.Fatalf("read after the flush joined the fill in flight (got %d)", <-second)
	}
	h.release()
	if info := <-first; info.L1Stored {
		t.Fatalf("the fill that began before the flush was installed in L1: %+v", info)
	}
	if v, info := mustGet(t, b.Cache, "k", src); v != 2 {
		t.Fatalf("read after everything: got %d from %v, want 2", v, info.Source)
	}
}

// rule 6: when the subscription is confirmed again, L1 is flushed once
// more: a fill that began while the channel was down (and may have read a
// row whose invalidation was lost in that gap) must not land in the L1 that
// the confirmation turns back on.
func TestResubscribeFencesFillsOfTheGap(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	src := newSource()
	src.set("k", 1)
	optB := fastOptions("resub")
	gap := newCutOff(&optB)
	a := newCache(t, srv.client(t), fastOptions("resub"))
	b := newCache(t, srv.client(t), optB)
	waitSignal(t, gap.up, "first subscription")
	waitReady(t, a)

	gap.cut(t, admin)
	h := newHeldLoad(src, "k")
	defer h.release()
	ctx := context.Background()
	first := make(chan Info, 1)
	go func() { _, info, _ := b.GetInfo(ctx, "k", h.load); first <- info }()
	<-h.readDone // a fill of the gap read version 1
	waitReady(t, a)
	src.set("k", 2)
	if err := a.Invalidate(ctx, "k"); err != nil { // b never hears of it
		t.Fatal(err)
	}
	gap.release(t)
	h.release()
	if info := <-first; info.L1Stored {
		t.Fatalf("a fill of the gap was installed after the re-subscription: %+v", info)
	}
	if v, info := mustGet(t, b, "k", src); v != 2 {
		t.Fatalf("after re-subscribing: got %d from %v, want 2", v, info.Source)
	}
}

// rule 12: a loader that panics is an error for every caller that waited
// on it, and the process goes on.
func TestLoaderPanicIsAnErrorForEveryCaller(t *testing.T) {
	t.Parallel()
	c := newCache(t, nil, Options{Mode: ModeL1Only})
	started, release := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		close(started)
		<-release
		panic("the loader is broken")
	}
	errs := make(chan error, 5)
	go func() { _, err := c.Get(context.Background(), "k", load); errs <- err }()
	<-started
	for range 4 {
		go func() { _, err := c.Get(context.Background(), "k", load); errs <- err }()
	}
	eventually(t, 5*time.Second, "four callers wait", func() bool { return joined(c, "k") == 4 })
	close(release)
	for range 5 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "panicked: the loader is broken") {
			t.Fatalf("caller: got %v, want the panic as an error", err)
		}
	}
	ok := func(ctx context.Context) (int, error) { return 7, nil }
	if v, err := c.Get(context.Background(), "k", ok); err != nil || v != 7 {
		t.Fatalf("after the panic: got %d %v, want 7 <nil>", v, err)
	}
}

// joined returns how many callers joined the load of key in flight.
func joined(c *Cache[int], key string) int {
	c.flight.mu.Lock()
	defer c.flight.mu.Unlock()
	if call, ok := c.flight.m[key]; ok {
		return call.joined
	}
	return -1
}

// rule 12: an L2 value that cannot be decoded is a miss: deleted, then
// loaded, never an error for the callers.
func TestUndecodableL2ValueIsAMiss(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	src := newSource()
	src.set("k", 5)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb), Mode: ModeL2Only})
	ctx := context.Background()
	if err := rdb.Set(ctx, c.l2.valueKey("k"), "v{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	v, info, err := c.GetInfo(ctx, "k", src.loader("k"))
	if err != nil || v != 5 || info.Source != SourceLoader || !info.L2Stored {
		t.Fatalf("got %d %+v %v, want 5 loaded and stored", v, info, err)
	}
	if s := c.Stats(); s.DecodeErrors != 1 {
		t.Fatalf("decode errors: got %d, want 1", s.DecodeErrors)
	}
	if v, info := mustGet(t, c, "k", src); v != 5 || info.Source != SourceL2 {
		t.Fatalf("next read: got %d from %v, want 5 from L2", v, info.Source)
	}
}
