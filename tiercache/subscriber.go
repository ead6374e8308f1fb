package tiercache

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/ratelog"
)

var errPingTimeout = errors.New("tiercache: subscription silent for longer than PingTimeout")

// bus is the invalidation channel of a tiered, multi-replica cache. One
// goroutine owns the subscription and reads it with Receive, which (unlike
// Channel) shows every break and every re-subscription. While the
// subscription is not confirmed, L1 is flushed and bypassed: messages sent
// in that time are lost for good (Redis pub/sub is at most once), so nothing
// cached before or during the gap can be trusted (docs/design.md §3.5, §3.6).
//
// A second goroutine per subscription sends PING on it every
// FreshnessInterval, carrying its send time. Redis answers a subscribed PING
// in order, after every message it delivered to the connection before it, so
// when the answer is read every invalidation published before the send time
// has been applied: freshAt, the newest such send time, is how far this
// replica is provably caught up (docs/design.md §3.13).
type bus struct {
	channel string
	inc     string     // this incarnation's random id, see message
	sendMu  sync.Mutex // serialises sends, so sequence numbers arrive in order
	seq     uint64     // guarded by sendMu: this incarnation's last accepted message
	// Guarded by sendMu: when this incarnation last registered (incarnations.go).
	registered   bool
	registeredAt int64
	batchMu      sync.Mutex
	open         *batch      // guarded by batchMu: the batch callers join, see publish
	up           atomic.Bool // subscription confirmed
	freshAt      atomic.Int64
	lapsed       atomic.Bool // a reader or the pinger found freshAt too old
	cancel       context.CancelFunc

	// Pinging on demand: an idle replica need not prove every 5ms that it
	// is caught up. demand is set by reads that consult L1 and cleared by
	// every tick of the pinger; after idleTicks quiet ticks the pinger
	// sleeps (idle), pinging only for liveness, until a read wakes it.
	demand atomic.Bool
	idle   atomic.Bool
	wokeAt atomic.Int64  // clock reading when the pinger last woke
	wake   chan struct{} // capacity 1: a read's wake-up call

	mu sync.Mutex
	ps *redis.PubSub // guarded by mu: the live subscription, closed by close

	// Subscriber goroutine only.
	src       map[string]*publisher // per publisher incarnation
	known     map[string]struct{}   // incarnations registered before this subscription
	lastPrune int64

	// The cache, through closures, so bus need not be generic.
	handle func(payload string)
	onUp   func()
	onDown func(err error)
	clock  func() int64
	warn   *ratelog.Limiter
	hooks  *hooks
	opt    *Options
	stats  *stats
	rdb    redis.UniversalClient
}

// publisher is what a subscriber remembers of one publisher incarnation.
type publisher struct {
	seq  uint64 // highest sequence number seen
	seen int64  // clock reading of its last message
}

// publisherTTL is how long a publisher incarnation that sends nothing is
// remembered; a restarted replica is a new incarnation, so the map would
// otherwise grow with every rollout.
const publisherTTL = 10 * time.Minute

func newBus[V any](c *Cache[V]) *bus {
	b := &bus{
		channel: c.opt.Namespace + ":inval",
		inc:     randomToken()[:12],
		hooks:   &c.opt.hooks, opt: &c.opt, stats: &c.stats, rdb: c.rdb,
		src: make(map[string]*publisher), known: make(map[string]struct{}),
		clock: c.clockNow, warn: c.warn,
		wake: make(chan struct{}, 1),
	}
	b.handle = func(p string) { c.handleMessage(b, p) }
	b.onUp = c.channelUp
	b.onDown = c.channelDown
	return b
}

// start runs the subscriber until close.
func (b *bus) start(wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	wg.Go(func() { b.run(ctx) })
}

func (b *bus) close() {
	b.cancel()
	b.mu.Lock()
	if b.ps != nil {
		_ = b.ps.Close()
	}
	b.mu.Unlock()
}

// fresh reports whether, at now, this replica has proved within
// StalenessBound that it applied every invalidation published before.
func (b *bus) fresh(now int64) bool {
	return now-b.freshAt.Load() <= int64(b.opt.StalenessBound)
}

// want records that a read consulted L1, and wakes an idle pinger; cheap
// when already recorded (a load, no store).
func (b *bus) want() {
	if b.demand.Load() || !b.demand.CompareAndSwap(false, true) {
		return
	}
	if b.idle.Load() {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// waking reports whether the pinger is idle, or woke and has not had an
// answer to a ping sent since (for at most PingTimeout/3, its idle pace): a
// replica behind then is not lapsed, it has not been asked to keep up.
func (b *bus) waking(now int64) bool {
	if b.idle.Load() {
		return true
	}
	woke := b.wokeAt.Load()
	return b.freshAt.Load() < woke && now-woke < int64(b.opt.PingTimeout/3)
}

// noteLapse counts and logs the start of a lapse, once.
func (b *bus) noteLapse(now int64) {
	if b.lapsed.Load() || !b.lapsed.CompareAndSwap(false, true) {
		return
	}
	b.stats.lapses.Add(1)
	b.warn.Warn("lapse", "tiercache: invalidation stream lapsed, L1 bypassed",
		"behind", time.Duration(now-b.freshAt.Load()).String(), "bound", b.opt.StalenessBound.String())
}

// run subscribes, reads until the subscription breaks, and starts over with
// a capped exponential backoff, until ctx ends.
func (b *bus) run(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		runHook(b.hooks.beforeSubscribe)
		confirmed, err := b.session(ctx)
		if ctx.Err() != nil {
			return
		}
		b.onDown(err)
		if confirmed {
			backoff = 10 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, b.opt.ReconnectBackoff)
	}
}

// session runs one subscription until it breaks; confirmed reports whether
// Redis ever confirmed it.
func (b *bus) session(ctx context.Context) (confirmed bool, err error) {
	sent := b.clock()
	node, sn, err := b.subscribeNode(ctx)
	if err == nil { // before subscribing: see incarnations.go
		b.known, err = b.registry(ctx)
	}
	if err != nil {
		return false, err
	}
	var ps *redis.PubSub
	if b.sharded() {
		ps = node.SSubscribe(ctx, b.channel)
	} else {
		ps = node.Subscribe(ctx, b.channel)
	}
	b.mu.Lock()
	if ctx.Err() != nil {
		b.mu.Unlock()
		_ = ps.Close()
		return false, ctx.Err()
	}
	b.ps = ps
	b.mu.Unlock()
	pctx, stopPinger := context.WithCancel(ctx)
	var pinger sync.WaitGroup
	pinger.Go(func() { b.ping(pctx, ps) })
	var moved atomic.Bool
	pinger.Go(func() { b.watchTopology(pctx, sn, ps, func() { moved.Store(true) }) })
	defer func() {
		stopPinger()
		b.mu.Lock()
		b.ps = nil
		b.mu.Unlock()
		_ = ps.Close()
		pinger.Wait()
	}()
	for {
		m, err := ps.ReceiveTimeout(ctx, b.opt.PingTimeout)
		if err != nil {
			if ctx.Err() == nil && isTimeout(err) {
				err = errPingTimeout
			}
			if moved.Load() {
				b.stats.topologyResubscribes.Add(1)
				err = errTopologyChanged
			}
			return confirmed, err
		}
		runHook(b.hooks.beforeApply)
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Channel != b.channel {
				continue
			}
			if err := b.confirm(m, sent); err != nil {
				return confirmed, err
			}
			confirmed = true
		case *redis.Message:
			b.handle(m.Payload)
		case *redis.Pong:
			b.pong(m.Payload)
		}
	}
}

// confirm handles Redis's answer about the subscription: a confirmation
// brings the channel up; an unsubscription ends the session.
func (b *bus) confirm(m *redis.Subscription, sent int64) error {
	switch m.Kind {
	case "subscribe", "ssubscribe":
	case "sunsubscribe": // Redis drops a slot's subscribers when it loses the slot
		b.stats.topologyResubscribes.Add(1)
		return errTopologyChanged
	default:
		return errors.New("tiercache: unsubscribed by server")
	}
	clear(b.src)
	b.onUp()
	// Caught up as of the SUBSCRIBE: onUp flushed L1 and forgot every
	// load, so nothing here predates it.
	b.advance(sent)
	return nil
}

// idleTicks is how many pinger ticks without a read make the pinger idle
// (100ms at the default FreshnessInterval).
const idleTicks = 20

// ping sends PING on the subscription every FreshnessInterval with its send
// time as the payload, until ctx ends or a ping fails; a failed ping closes
// the subscription so that the session ends at once. While no read
// consults L1 it pings only every PingTimeout/3, to keep the connection
// from looking dead: at 5ms, pinging costs an idle replica several percent
// of a core.
func (b *bus) ping(ctx context.Context, ps *redis.PubSub) {
	t := time.NewTicker(b.opt.FreshnessInterval)
	defer t.Stop()
	var buf [20]byte
	quiet := 0
	defer b.wakeUp() // a new session starts at full pace
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.demand.Swap(false) {
			quiet = 0
			b.wakeUp()
		} else if quiet++; quiet >= idleTicks && !b.hooks.neverIdle {
			if !b.sleep(ctx) {
				return
			}
			if b.demand.Swap(false) { // woken by a read, not by the timer
				quiet = 0
				b.wakeUp()
			}
		}
		now := b.clock()
		if !b.fresh(now) && b.up.Load() && !b.waking(now) {
			b.noteLapse(now)
		}
		b.stats.pings.Add(1)
		if err := ps.Ping(ctx, string(strconv.AppendInt(buf[:0], now, 10))); err != nil {
			if ctx.Err() == nil {
				_ = ps.Close()
			}
			return
		}
	}
}

// sleep idles the pinger until a read wants it or PingTimeout/3 passes;
// it reports false when ctx ended. The pinger stays idle when the timer
// wakes it: the liveness ping it then sends is idle-paced, and a replica
// that has not been asked to keep up is waking, not lapsed, however long
// the scheduler keeps the pinger from its next tick. Only a read's demand
// (seen by the caller, see wakeUp) ends idleness.
func (b *bus) sleep(ctx context.Context) bool {
	b.idle.Store(true)
	select {
	case <-b.wake: // a wake-up left over from a read during a liveness ping
	default:
	}
	if b.demand.Load() { // a read came between the last tick and idle
		return true
	}
	timer := time.NewTimer(b.opt.PingTimeout / 3)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-b.wake:
	case <-timer.C:
	}
	return true
}

// wakeUp ends idle pacing because a read wants L1: from now on the replica
// must keep up, and it is waking until a ping sent from now is answered.
func (b *bus) wakeUp() {
	if b.idle.Load() {
		b.wokeAt.Store(b.clock())
		b.idle.Store(false)
	}
}

// pong applies the answer to a freshness ping: everything published before
// its send time has been applied by now.
func (b *bus) pong(payload string) {
	sent, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		return
	}
	b.advance(sent)
}

// advance records that everything published before sent has been applied.
func (b *bus) advance(sent int64) {
	if sent > b.freshAt.Load() {
		b.freshAt.Store(sent) // only the subscriber goroutine stores
	}
	now := b.clock()
	if b.lapsed.Load() && b.fresh(now) && b.lapsed.CompareAndSwap(true, false) {
		b.opt.Logger.Debug("tiercache: invalidation stream caught up, L1 serves again")
	}
	if now-b.lastPrune > int64(time.Minute) {
		b.lastPrune = now
		for k, p := range b.src {
			if now-p.seen > int64(publisherTTL) {
				delete(b.src, k)
				if b.known == nil {
					b.known = make(map[string]struct{})
				}
				b.known[k] = struct{}{} // its next first number need not be 1
			}
		}
	}
}

// observe records message m from its publisher incarnation and reports
// whether it reveals a gap: a sequence number more than one past the last
// seen, or, from an incarnation not registered before this subscription, a
// first number other than 1 (incarnations.go). A repeat or an older number
// (a publish that timed out yet was delivered) is no gap.
func (b *bus) observe(m message, now int64) (gap bool) {
	key := m.Src + "\x00" + m.Inc
	p := b.src[key]
	if p == nil {
		b.src[key] = &publisher{seq: m.Seq, seen: now}
		_, known := b.known[key]
		return !known && m.Seq > 1
	}
	gap = m.Seq > p.seq+1
	p.seq, p.seen = max(p.seq, m.Seq), now
	return gap
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// channelUp runs when Redis confirms the subscription: flush once more
// (anything filled before this point may have missed a message), catch up on
// group generations, and only then let L1 serve. If the generations cannot
// be read, grouped reads ask Redis until a retry succeeds.
func (c *Cache[V]) channelUp() {
	c.flushL1()
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.L2Timeout*5)
	err := c.groups.refresh(ctx)
	cancel()
	if err != nil {
		c.warn.Warn("refresh", "tiercache: group generations not refreshed, grouped reads ask redis", "err", err)
	}
	c.bus.up.Store(true)
	c.l1.enable(true)
	c.stats.subscribes.Add(1)
	c.opt.Logger.Info("tiercache: invalidation channel up", "channel", c.bus.channel)
	runHook(c.opt.hooks.channelUp)
}

// channelDown runs when the subscription breaks: stop serving from L1 and
// drop all of it.
func (c *Cache[V]) channelDown(err error) {
	wasUp := c.bus.up.Swap(false)
	c.l1.enable(false)
	c.flushL1()
	if wasUp {
		c.stats.subscriptionBreaks.Add(1)
		c.opt.Logger.Warn("tiercache: invalidation channel down, L1 bypassed", "err", err)
	} else {
		c.warn.Warn("subscribe", "tiercache: invalidation channel still down", "err", err)
	}
	runHook(c.opt.hooks.channelDown)
}

// handleMessage applies one invalidation broadcast. Own messages were applied
// before they were sent; malformed ones are counted and dropped. A gap in a
// publisher's sequence means a message was lost, so L1 is flushed.
func (c *Cache[V]) handleMessage(b *bus, payload string) {
	if c.opt.hooks.dropMessage != nil && c.opt.hooks.dropMessage(payload) {
		return // lost on the way, as far as this replica can tell
	}
	m, err := decodeMessage([]byte(payload))
	if err != nil {
		c.stats.malformed.Add(1)
		c.warn.Warn("malformed", "tiercache: malformed invalidation ignored", "len", len(payload), "err", err)
		return
	}
	c.stats.received.Add(1)
	if m.Src == c.opt.ReplicaID && m.Inc == b.inc {
		c.stats.ownSkipped.Add(1)
		return
	}
	if b.observe(m, c.clockNow()) {
		c.stats.gaps.Add(1)
		c.flushL1()
	}
	if m.Flush {
		c.flushL1()
	}
	c.evict(m.Keys)
	c.groups.heard(m.Groups)
	c.stats.applied.Add(1)
	if m.TS > 0 {
		c.stats.lag.observe(time.Since(time.UnixMicro(m.TS)))
	}
	if c.opt.hooks.onMessage != nil {
		c.opt.hooks.onMessage(m.Src, m.Keys)
	}
}

// flushL1 drops every L1 entry, fences every fill in flight and makes later
// readers start new loads instead of joining those fills, and counts it
// (docs/design.md §3.3, §3.6).
func (c *Cache[V]) flushL1() {
	c.l1.flush()
	c.flight.forgetAll()
	c.stats.flushes.Add(1)
}
