package tiercache

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// signal returns a hook that reports each call on a buffered channel.
func signal() (func(), chan struct{}) {
	ch := make(chan struct{}, 100)
	return func() { ch <- struct{}{} }, ch
}

func waitSignal(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// cutOff lets a test kill a replica's subscription (CLIENT KILL TYPE pubsub
// on its private Redis) and keep it from re-subscribing until it lets go:
// whatever is published meanwhile is lost for that replica.
type cutOff struct {
	held     atomic.Bool
	hold     chan struct{}
	up, down chan struct{}
}

// newCutOff wires opt's hooks for a cutOff.
func newCutOff(opt *Options) *cutOff {
	c := &cutOff{hold: make(chan struct{})}
	var up, down func()
	up, c.up = signal()
	down, c.down = signal()
	opt.hooks.channelUp, opt.hooks.channelDown = up, down
	opt.hooks.beforeSubscribe = func() {
		if c.held.Load() {
			<-c.hold
		}
	}
	return c
}

// cut kills every pub/sub connection of admin's server, holds this
// replica's re-subscription, and returns once the replica noticed.
func (c *cutOff) cut(t *testing.T, admin *redis.Client) {
	t.Helper()
	c.held.Store(true)
	if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, c.down, "subscription break")
}

// release lets the replica re-subscribe and returns once it has.
func (c *cutOff) release(t *testing.T) {
	t.Helper()
	c.held.Store(false)
	close(c.hold)
	waitSignal(t, c.up, "re-subscription")
}

// TestLostMessageAfterPubSubKill kills a replica's subscriber connection and
// holds it from re-subscribing while another replica writes: the message is
// lost for good, yet the replica never serves the old value.
func TestLostMessageAfterPubSubKill(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	src := newSource()
	src.set("k", 1)
	optB := fastOptions("lost")
	gap := newCutOff(&optB)
	a := newCache(t, srv.client(t), fastOptions("lost"))
	b := newCache(t, srv.client(t), optB)
	waitSignal(t, gap.up, "first subscription")
	waitReady(t, a)
	mustGet(t, b, "k", src)
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("before the kill: got %v, want L1", info.Source)
	}

	gap.cut(t, admin)
	waitReady(t, a) // a re-subscribed by itself
	src.set("k", 2)
	ctx := context.Background()
	if err := a.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if v, info := mustGet(t, b, "k", src); v != 2 || info.Source == SourceL1 {
		t.Fatalf("during the gap: got %d from %v, want 2 not from L1", v, info.Source)
	}
	gap.release(t)
	if v, _ := mustGet(t, b, "k", src); v != 2 {
		t.Fatalf("after re-subscribing: got %d, want 2", v)
	}
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("after re-subscribing: got %v, want L1 in use again", info.Source)
	}
	if s := b.Stats(); s.SubscriptionBreaks != 1 || s.Subscribes != 2 {
		t.Fatalf("got %d breaks %d subscribes, want 1 and 2", s.SubscriptionBreaks, s.Subscribes)
	}
}

// TestRedisRestart kills Redis under two replicas: reads keep working
// through the loader; when Redis returns, both re-subscribe with L1 flushed,
// and invalidations flow again.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	src := newSource()
	src.set("k", 1)
	var ups, downs [2]chan struct{}
	var cs [2]*Cache[int]
	for i := range cs {
		opt := fastOptions("restart")
		var up, down func()
		up, ups[i] = signal()
		down, downs[i] = signal()
		opt.hooks.channelUp, opt.hooks.channelDown = up, down
		cs[i] = newCache(t, srv.client(t), opt)
		waitSignal(t, ups[i], "first subscription")
	}
	a, b := cs[0], cs[1]
	mustGet(t, a, "k", src)
	mustGet(t, b, "k", src)

	srv.stop()
	// Until a replica notices the dead connection (milliseconds) it still
	// serves L1; that window is the invalidation lag, tested elsewhere.
	waitSignal(t, downs[0], "a notices Redis is gone")
	waitSignal(t, downs[1], "b notices Redis is gone")
	src.set("k", 2) // a write while Redis is away: nobody can be told
	if err := a.Invalidate(context.Background(), "k"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with Redis down: got %v, want ErrDeferred", err)
	}
	start := time.Now()
	for i := range 50 {
		v, err := b.Get(context.Background(), "k", src.loader("k"))
		if err != nil {
			t.Fatalf("read %d with Redis down: %v", i, err)
		}
		if v != 2 {
			t.Fatalf("read %d with Redis down: got %d, want 2", i, v)
		}
	}
	if s := b.Stats(); s.BreakerOpens == 0 {
		t.Fatalf("breaker never opened: %+v", s)
	}
	t.Logf("50 reads with Redis down took %v", time.Since(start))

	flushes := b.Stats().Flushes
	srv.start()
	waitSignal(t, ups[0], "a re-subscribed")
	waitSignal(t, ups[1], "b re-subscribed")
	if b.Stats().Flushes <= flushes {
		t.Fatal("L1 not flushed on re-subscription")
	}
	eventually(t, 5*time.Second, "retry queue drained", func() bool { return a.Stats().RetryQueued == 0 })
	mustGet(t, b, "k", src)
	src.set("k", 3)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b sees the write after the restart", func() bool {
		v, _ := mustGet(t, b, "k", src)
		return v == 3
	})
}

// TestFailedPublishIsRetried denies PUBLISH to the writer with an ACL: the
// L2 delete goes through, the publish fails and is queued, and once PUBLISH is
// allowed again the retry reaches the other replica. What proves it is the
// message b receives (its onMessage hook), not where b's reads come from:
// on a busy machine b may rightly bypass or flush its L1 meanwhile.
func TestFailedPublishIsRetried(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "on", "nopass", "~*", "&*", "+@all", "-publish").Err(); err != nil {
		t.Fatal(err)
	}
	wrdb := dialRedis(t, &redis.Options{Addr: srv.addr(), Username: "writer", Password: "any"})
	src := newSource()
	src.set("k", 1)
	got := make(chan []string, 10)
	optB := Options{Namespace: "retry"}
	optB.hooks.onMessage = func(_ string, keys []string) { got <- keys }
	a := newCache(t, wrdb, fastOptions("retry"))
	// b's client has go-redis's default timeouts, not the fail-fast ones:
	// its subscription must outlast a busy machine, or it would miss the
	// one retried message.
	brdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { _ = brdb.Close() })
	b := newCache(t, brdb, optB)
	waitReady(t, a, b)
	mustGet(t, b, "k", src)

	src.set("k", 2)
	if err := a.Invalidate(ctx, "k"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with PUBLISH denied: got %v, want ErrDeferred", err)
	}
	if s := a.Stats(); s.PublishFailures == 0 || s.RetryQueued != 1 {
		t.Fatalf("got %d publish failures, %d queued, want >0 and 1", s.PublishFailures, s.RetryQueued)
	}
	select {
	case keys := <-got:
		t.Fatalf("b heard of %v while PUBLISH was denied", keys)
	default:
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "+publish").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case keys := <-got:
		if strings.Join(keys, ",") != "k" {
			t.Fatalf("retried message keys: got %v, want [k]", keys)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retried invalidation never arrived")
	}
	if v, _ := mustGet(t, b, "k", src); v != 2 {
		t.Fatalf("after the retry: got %d, want 2", v)
	}
	// The message can reach b before a's retry loop counts its success:
	// wait for the count instead of reading it once.
	eventually(t, 10*time.Second, "a retry counted as succeeded", func() bool {
		return a.Stats().RetrySucceeded > 0
	})
}

// TestRetryQueueOverflow fills a writer's retry queue while Redis refuses its
// deletes and publishes (an ACL): the keys that did not fit are not lost.
// The writer bypasses L2 meanwhile, and once Redis accepts it again it
// purges every value of the namespace and makes the other replica flush L1.
func TestRetryQueueOverflow(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "on", "nopass", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	wrdb := dialRedis(t, &redis.Options{Addr: srv.addr(), Username: "writer", Password: "any"})
	src := newSource()
	keys := []string{"k1", "k2", "k3"}
	optA := fastOptions("overflow")
	optA.RetryQueueSize = 2
	got := make(chan bool, 10)
	optB := fastOptions("overflow")
	optB.hooks.onMessage = func(string, []string) { got <- true }
	a := newCache(t, wrdb, optA)
	b := newCache(t, srv.client(t), optB)
	waitReady(t, a, b)
	for _, k := range keys {
		src.set(k, 1)
		mustGet(t, a, k, src)
		mustGet(t, b, k, src)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "-del", "-publish", "-eval", "-evalsha").Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		src.set(k, 2)
		if err := a.Invalidate(ctx, k); !errors.Is(err, ErrDeferred) {
			t.Fatalf("invalidate with DEL denied: got %v, want ErrDeferred", err)
		}
	}
	if s := a.Stats(); s.RetryDropped != 1 {
		t.Fatalf("dropped: got %d, want 1 (queue of 2, 3 keys)", s.RetryDropped)
	}
	// L2 still holds version 1 of every key; the writer must not read it.
	for _, k := range keys {
		if v, info := mustGet(t, a, k, src); v != 2 || info.Source == SourceL2 {
			t.Fatalf("writer %s during the outage: got %d from %v, want 2 not from L2", k, v, info.Source)
		}
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the purge's flush never arrived")
	}
	eventually(t, 5*time.Second, "overflow cleared", func() bool { return !a.retry.overflow.Load() })
	for _, k := range keys {
		if v, info := mustGet(t, b, k, src); v != 2 {
			t.Fatalf("other replica %s after the purge: got %d from %v, want 2", k, v, info.Source)
		}
	}
	if s := b.Stats(); s.Flushes < 2 {
		t.Fatalf("other replica flushes: got %d, want the subscription's and the purge's", s.Flushes)
	}
}

// countingHandler counts log records at warning level and above.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h countingHandler) WithGroup(string) slog.Handler                { return h }

// An outage is logged, not narrated: with Redis gone, 200 writes and the
// subscriber's reconnect attempts write a handful of warnings, each kind at
// most once a second.
func TestOutageWarningsAreRateLimited(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	var warnings atomic.Int64
	opt := fastOptions("quiet")
	opt.Logger = slog.New(countingHandler{&warnings})
	down, downCh := signal()
	opt.hooks.channelDown = down
	c := newCache(t, srv.client(t), opt)
	waitReady(t, c)
	// The outage is counted from the stop: reconnect attempts, and their
	// warnings, begin before the channel-down hook returns, which on a
	// starved machine took long enough for a second window to open
	// (4 warnings counted against a limit of 3).
	start := time.Now()
	srv.stop()
	waitSignal(t, downCh, "the channel notices")
	for i := range 200 {
		if err := c.Invalidate(context.Background(), "k"+strconv.Itoa(i)); !errors.Is(err, ErrDeferred) {
			t.Fatalf("invalidate %d with Redis down: got %v, want ErrDeferred", i, err)
		}
	}
	waitSignal(t, downCh, "a failed reconnect")
	secs := int64(time.Since(start)/time.Second) + 1
	// Kinds: the channel going down, its reconnect attempts, the deferred
	// deletes; each at most once per started second.
	if n := warnings.Load(); n > 1+2*secs {
		t.Fatalf("%d warnings in about %ds of outage, want at most %d", n, secs, 1+2*secs)
	}
}
