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

// aclUser creates (or changes) an ACL user on srv with rules and returns a
// client logged in as it. Rules are applied after a reset.
func aclUser(t *testing.T, srv redisServer, admin *redis.Client, name string, rules ...string) *redis.Client {
	t.Helper()
	setACL(t, admin, name, rules...)
	return dialRedis(t, &redis.Options{Addr: srv.addr(), Username: name, Password: "any"})
}

func setACL(t *testing.T, admin *redis.Client, name string, rules ...string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", name, "reset", "on", "nopass"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %s %v: %v", name, rules, err)
	}
}

var allowAll = []string{"~*", "&*", "+@all"}

// rule 2: the L2 delete comes before the local L1 step. A reader on the
// writing replica that reads the old value from L2 just before the delete
// installs it in L1, and the local step that follows evicts it. Had L1 been
// evicted first, the same reader would install the old value after the
// eviction, and keep it until the L1 max age.
func TestL2DeleteBeforeL1Evict(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	src := newSource()
	src.set("k", 1)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb)})
	waitReady(t, c)
	mustGet(t, c, "k", src) // L1 and L2 hold 1
	c.l1.flush()            // only L2 holds 1
	src.set("k", 2)
	var info Info
	c.opt.hooks.beforeL2Delete = func() { _, info = mustGet(t, c, "k", src) }
	if err := c.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	c.opt.hooks.beforeL2Delete = nil
	if info.Source != SourceL2 || !info.L1Stored {
		t.Fatalf("the racing read: got %+v, want an L2 hit installed in L1 (else the test proves nothing)", info)
	}
	if v, info := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("after the write: got %d from %v, want 2", v, info.Source)
	}
}

// rule 3: an invalidation forgets the load in flight, on the writing replica
// and on the others, so a read that begins after it starts a new load
// instead of joining one that read the old row.
func TestInvalidationForgetsLoadInFlight(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	applied := make(chan string, 10)
	a := newHeldReplica(t, needRedis(t), ns) // frozen clocks: joining is never refused for age
	b := newHeldReplica(t, needRedis(t), ns, func(o *Options) {
		o.hooks.onMessage = func(_ string, keys []string) { applied <- strings.Join(keys, ",") }
	})
	waitReady(t, a.Cache, b.Cache)
	for _, r := range []heldReplica{a, b} {
		eventually(t, 5*time.Second, "caught up", func() bool { return r.bus.fresh(r.clock.Load()) })
	}
	waitApplied := func(key string) {
		for k := range applied {
			if k == key {
				return
			}
		}
	}
	for _, tc := range []struct {
		name   string
		reader heldReplica
		wait   func(key string)
	}{
		{"writer", a, func(string) {}},
		{"other replica", b, waitApplied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource()
			key := "k-" + tc.name
			src.set(key, 1)
			var calls atomic.Int32
			readDone, resume := make(chan struct{}), make(chan struct{})
			load := func(ctx context.Context) (int, error) {
				v := src.get(key)
				if calls.Add(1) == 1 {
					close(readDone)
					<-resume
				}
				return v, nil
			}
			first := make(chan int, 1)
			go func() { v, _ := tc.reader.Get(context.Background(), key, load); first <- v }()
			<-readDone
			src.set(key, 2)
			if err := a.Invalidate(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			tc.wait(key)
			second := make(chan int, 1)
			go func() { v, _ := tc.reader.Get(context.Background(), key, load); second <- v }()
			select {
			case v := <-second:
				if v != 2 {
					t.Fatalf("read after the invalidation: got %d, want 2", v)
				}
			case <-time.After(10 * time.Second):
				close(resume)
				t.Fatalf("read after the invalidation joined the old load (got %d)", <-second)
			}
			close(resume)
			<-first
		})
	}
}

// rule 8 (and rules 2, 3): when the L2 delete fails, the key is queued
// for retry before the local step, so a reader on the writing replica that
// runs right after the local step keeps off L2, which still holds the old
// value. The afterLocal hook runs as the local step ends: with the two
// steps the other way round it would stand between them, the key not yet
// queued, and the reader would take a fence token after the bump and
// install the old value from L2.
func TestFailedDeleteQueuesBeforeLocalStep(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	wrdb := aclUser(t, srv, admin, "writer", allowAll...)
	src := newSource()
	src.set("k", 1)
	c := newCache(t, wrdb, fastOptions("bug4"))
	waitReady(t, c)
	mustGet(t, c, "k", src) // L1 and L2 hold 1
	setACL(t, admin, "writer", append(allowAll, "-del")...)
	src.set("k", 2)
	var v int
	var info Info
	c.opt.hooks.afterLocal = func() { v, info = mustGet(t, c, "k", src) }
	if err := c.Invalidate(context.Background(), "k"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with DEL denied: got %v, want ErrDeferred", err)
	}
	c.opt.hooks.afterLocal = nil
	if v != 2 || info.Source == SourceL2 {
		t.Fatalf("read right after the local step: got %d from %v, want 2 not from L2", v, info.Source)
	}
	if v, info := mustGet(t, c, "k", src); v != 2 {
		t.Fatalf("read after the write: got %d from %v, want 2", v, info.Source)
	}
}

// rule 8: an invalidation under way when Close is called is part of
// Close's last retry pass, not lost after it. The invalidation is held
// after its failed delete, before it queues the retry, until Close either
// reports that it waits for it (the closeWaiting hook) or returns: a Close
// that does not wait returns before the retry is queued, every time.
func TestCloseWaitsForInvalidation(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	wrdb := aclUser(t, srv, admin, "writer", append(allowAll, "-del")...)
	src := newSource()
	src.set("k", 1)
	c, err := New[int](wrdb, nil, fastOptions("bug5"))
	if err != nil {
		t.Fatal(err)
	}
	closeWaiting := make(chan struct{})
	c.opt.hooks.closeWaiting = func() { close(closeWaiting) }
	waitReady(t, c)
	if err := admin.Set(context.Background(), c.l2.valueKey("k"), "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	c.opt.hooks.afterL2Delete = func() {
		go func() { closed <- c.Close() }()
		select {
		case <-closeWaiting: // Close waits for this invalidation
		case err := <-closed: // Close did not wait: it is over
			closed <- err
		}
		setACL(t, admin, "writer", allowAll...) // the last retry can get through
	}
	if err := c.Invalidate(context.Background(), "k"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with DEL denied: got %v, want ErrDeferred", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, _ := admin.Exists(context.Background(), c.l2.valueKey("k")).Result(); n != 0 {
		t.Fatal("the invalidation queued while Close ran was never retried: L2 still holds the old value")
	}
}

// rule 8: the write path does not heed the read path's circuit
// breaker: with the writer's breaker open, the delete and the publish are
// still tried, and the other replica hears of the write at once.
func TestInvalidationIgnoresOpenBreaker(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", 1)
	a := newCache(t, needRedis(t), Options{Namespace: ns, BreakerCooldown: time.Hour})
	b := newCache(t, needRedis(t), Options{Namespace: ns})
	waitReady(t, a, b)
	mustGet(t, b, "k", src)
	for range a.opt.BreakerThreshold {
		a.l2.br.record(errors.New("a Redis hiccup"))
	}
	if !a.l2.br.open() {
		t.Fatal("the breaker did not open")
	}
	src.set("k", 2)
	if err := a.Invalidate(context.Background(), "k"); err != nil {
		t.Fatalf("invalidate with the breaker open: got %v, want nil", err)
	}
	eventually(t, 5*time.Second, "b sees the write", func() bool {
		v, _ := mustGet(t, b, "k", src)
		return v == 2
	})
	if a.l2.br.open() {
		t.Fatal("a successful invalidation left the breaker open")
	}
}

// rule 6: a failed publish does not use up a sequence number; if it did,
// the retried message would show a gap and every other replica would flush
// its whole L1.
func TestFailedPublishKeepsSequence(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	wrdb := aclUser(t, srv, admin, "writer", allowAll...)
	got := make(chan []string, 10)
	optB := fastOptions("seq")
	optB.hooks.onMessage = func(_ string, keys []string) { got <- keys }
	a := newCache(t, wrdb, fastOptions("seq"))
	b := newCache(t, srv.client(t), optB)
	waitReady(t, a, b)
	ctx := context.Background()
	if err := a.Invalidate(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	<-got
	setACL(t, admin, "writer", append(allowAll, "-publish")...)
	if err := a.Invalidate(ctx, "second"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with PUBLISH denied: got %v, want ErrDeferred", err)
	}
	setACL(t, admin, "writer", allowAll...)
	select {
	case keys := <-got:
		if strings.Join(keys, ",") != "second" {
			t.Fatalf("retried message: got keys %v, want [second]", keys)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retried message never arrived")
	}
	if s := b.Stats(); s.Gaps != 0 {
		t.Fatalf("gaps: got %d, want 0", s.Gaps)
	}
}

// rule 6: sequence numbers count per publisher incarnation. A replica
// restarted under the same ReplicaID starts again from 1 as a new
// publisher: its first messages are not a rewind, and a gap in its own
// sequence is still noticed.
func TestSequencePerIncarnation(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	got := make(chan struct{}, 10)
	opt := Options{Namespace: ns}
	opt.hooks.onMessage = func(string, []string) { got <- struct{}{} }
	b := newCache(t, rdb, opt)
	waitReady(t, b)
	ctx := context.Background()
	for _, m := range []string{
		`{"v":1,"src":"a","inc":"first","seq":1}`,
		`{"v":1,"src":"a","inc":"first","seq":2}`,
		`{"v":1,"src":"a","inc":"first","seq":3}`,
		`{"v":1,"src":"a","inc":"second","seq":1}`, // a restart: no gap
		`{"v":1,"src":"a","inc":"second","seq":1}`, // a repeat: no gap
		`{"v":1,"src":"a","inc":"second","seq":3}`, // seq 2 lost: a gap
	} {
		if err := rdb.Publish(ctx, ns+":inval", m).Err(); err != nil {
			t.Fatal(err)
		}
		<-got
	}
	if s := b.Stats(); s.Gaps != 1 {
		t.Fatalf("gaps: got %d, want 1 (only the lost seq 2 of the second incarnation)", s.Gaps)
	}
}

// heldSend is a writer a whose first publish waits, once sending is
// closed, until release is closed, and a reader b whose messages' keys
// arrive on msgs.
type heldSend struct {
	a, b             *Cache[int]
	msgs             chan []string
	sending, release chan struct{}
}

// newHeldSend starts a heldSend; adjust, if not nil, changes a's options.
func newHeldSend(t *testing.T, adjust func(*Options)) heldSend {
	t.Helper()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	p := heldSend{msgs: make(chan []string, 10), sending: make(chan struct{}), release: make(chan struct{})}
	optB := Options{Namespace: ns}
	optB.hooks.onMessage = func(_ string, keys []string) { p.msgs <- keys }
	var first atomic.Bool
	optA := Options{Namespace: ns}
	optA.hooks.beforeSend = func() {
		if first.CompareAndSwap(false, true) {
			close(p.sending)
			<-p.release
		}
	}
	if adjust != nil {
		adjust(&optA)
	}
	p.a = newCache(t, needRedis(t), optA)
	p.b = newCache(t, needRedis(t), optB)
	waitReady(t, p.a, p.b)
	return p
}

// Invalidations that arrive while another is being published ride in the
// next message together: a replica is not limited to one invalidation per
// Redis round trip. Each caller returns only once its keys were published,
// and the receiver sees no gap.
func TestConcurrentInvalidationsShareAMessage(t *testing.T) {
	t.Parallel()
	p := newHeldSend(t, nil)
	a, b, msgs, sending, release := p.a, p.b, p.msgs, p.sending, p.release
	ctx := context.Background()
	errs := make(chan error, 51)
	go func() { errs <- a.Invalidate(ctx, "first") }()
	<-sending // the first message is on its way, held
	for i := range 50 {
		go func() { errs <- a.Invalidate(ctx, "k"+strconv.Itoa(i)) }()
	}
	eventually(t, 5*time.Second, "50 invalidations wait in the next batch", func() bool {
		a.bus.batchMu.Lock()
		defer a.bus.batchMu.Unlock()
		return a.bus.open != nil && len(a.bus.open.msg.Keys) == 50
	})
	select {
	case err := <-errs:
		t.Fatalf("an invalidation returned before its message was sent: %v", err)
	default:
	}
	close(release)
	for range 51 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := [][]string{<-msgs, <-msgs}
	if len(got[0]) != 1 || len(got[1]) != 50 {
		t.Fatalf("messages: got %d and %d keys, want 1 and 50", len(got[0]), len(got[1]))
	}
	if s := b.Stats(); s.Gaps != 0 || s.Applied != 2 {
		t.Fatalf("receiver: got %d gaps and %d messages, want 0 and 2", s.Gaps, s.Applied)
	}
}

// rule 8: a publish batch is sent whatever the context of the caller that
// leads it: an Invalidate with a live context that joins a batch whose
// leader's context was cancelled meanwhile gets nil, not ErrDeferred, and
// the other replica hears of its key.
func TestCancelledLeaderDoesNotSpoilItsBatch(t *testing.T) {
	t.Parallel()
	joins := make(chan bool, 3)
	p := newHeldSend(t, func(o *Options) { o.hooks.joined = func(lead bool) { joins <- lead } })
	a, msgs, sending, release := p.a, p.msgs, p.sending, p.release
	errs := make(chan error, 3)
	go func() { errs <- a.Invalidate(context.Background(), "first") }()
	<-joins
	<-sending // the first message is on its way, held
	leaderCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { errs <- a.Invalidate(leaderCtx, "leader") }()
	if lead := <-joins; !lead {
		t.Fatal("the second invalidation did not open the next batch")
	}
	cancel() // the leader gave up while its batch waited
	member := make(chan error, 1)
	go func() { member <- a.Invalidate(context.Background(), "member") }()
	if lead := <-joins; lead {
		t.Fatal("the third invalidation did not join the leader's batch")
	}
	close(release)
	if err := <-member; err != nil {
		t.Fatalf("invalidation with a live context in a cancelled leader's batch: %v", err)
	}
	<-errs
	<-errs
	for _, want := range []string{"first", "leader,member"} {
		if got := strings.Join(<-msgs, ","); got != want {
			t.Fatalf("message: got keys %s, want %s", got, want)
		}
	}
}

// rule 6: the subscriber forgets publisher incarnations it has not heard
// from for publisherTTL, so rollouts (each restart a new incarnation) do
// not grow its memory for ever.
func TestSubscriberForgetsSilentPublishers(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	b := &bus{src: map[string]*publisher{}, clock: now.Load, opt: &Options{StalenessBound: time.Second, Logger: slog.New(slog.DiscardHandler)}}
	b.observe(message{Src: "old", Inc: "1", Seq: 1}, now.Load())
	now.Add(int64(publisherTTL) / 2)
	b.observe(message{Src: "recent", Inc: "1", Seq: 1}, now.Load())
	now.Add(int64(publisherTTL)/2 + 1)
	b.pong(strconv.FormatInt(now.Load(), 10))
	if _, ok := b.src["old\x001"]; ok {
		t.Fatal("a publisher silent for longer than publisherTTL is still remembered")
	}
	if _, ok := b.src["recent\x001"]; !ok {
		t.Fatal("a publisher heard from within publisherTTL was forgotten")
	}
}

// TestLostFirstMessageOfIncarnationIsAGap: a publisher incarnation that
// started after the reader subscribed has its first message lost on the way
// to the reader; its second must be taken for a gap (L1 flushed), not as
// the start of its numbering, or the reader keeps serving what the lost
// message invalidated (docs/design.md §3.6).
func TestLostFirstMessageOfIncarnationIsAGap(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	applied := make(chan []string, 10)
	var dropped atomic.Bool
	optB := Options{Namespace: ns, L1TTL: time.Hour}
	optB.hooks.dropMessage = func(string) bool { return dropped.CompareAndSwap(false, true) }
	optB.hooks.onMessage = func(_ string, keys []string) { applied <- keys }
	b := newCache(t, rdb, optB)
	waitReady(t, b)
	a := newCache(t, rdb, Options{Namespace: ns}) // a new incarnation
	waitReady(t, a)
	ctx := context.Background()
	src.set("k", 1)
	mustGet(t, b, "k", src)
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("b: got %v, want an L1 hit", info.Source)
	}
	src.set("k", 2)
	for _, k := range []string{"k", "other"} { // a's messages 1 (dropped by b) and 2
		if err := a.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if keys := <-applied; len(keys) != 1 || keys[0] != "other" {
		t.Fatalf("b applied %v first, want [other]", keys)
	}
	if !dropped.Load() {
		t.Fatal("no message dropped")
	}
	if v, _ := mustGet(t, b, "k", src); v != 2 {
		t.Fatalf("b serves %d after the lost invalidation, want 2 (gaps %d)", v, b.Stats().Gaps)
	}
	if g := b.Stats().Gaps; g != 1 {
		t.Fatalf("gaps: got %d, want 1", g)
	}
}
