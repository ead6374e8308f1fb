package tiercache

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var errPingTimeout = errors.New("tiercache: subscription ping unanswered")

// bus is the invalidation channel of a tiered, multi-replica cache. It runs
// one goroutine that owns the subscription and reads it with Receive, which
// (unlike Channel) shows every break and every re-subscription. While the
// subscription is not confirmed, L1 is flushed and bypassed: messages sent
// in that time are lost for good (Redis pub/sub is at most once), so nothing
// cached before or during the gap can be trusted (DESIGN §3.5, §3.6).
type bus struct {
	channel string
	pubMu   sync.Mutex  // serialises publishes, so sequence numbers arrive in order
	seq     uint64      // guarded by pubMu: this replica's last message sequence
	up      atomic.Bool // subscription confirmed
	cancel  context.CancelFunc
	ctx     context.Context

	mu  sync.Mutex
	ps  *redis.PubSub     // guarded by mu: the live subscription, closed by close
	src map[string]uint64 // last sequence seen per publisher; subscriber goroutine only

	// The cache, through closures, so bus need not be generic.
	handle func(payload string)
	onUp   func()
	onDown func(err error)
	hooks  *hooks
	opt    *Options
	rdb    redis.UniversalClient
}

func newBus[V any](c *Cache[V]) *bus {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bus{
		channel: c.opt.Namespace + ":inval",
		ctx:     ctx, cancel: cancel,
		hooks: &c.opt.hooks, opt: &c.opt, rdb: c.rdb,
		src: make(map[string]uint64),
	}
	b.handle = func(p string) { c.handleMessage(b, p) }
	b.onUp = c.channelUp
	b.onDown = c.channelDown
	return b
}

func (b *bus) close() {
	b.cancel()
	b.mu.Lock()
	if b.ps != nil {
		_ = b.ps.Close()
	}
	b.mu.Unlock()
}

// run subscribes, reads until the subscription breaks, and starts over with
// a capped exponential backoff, until the bus is closed.
func (b *bus) run() {
	backoff := 10 * time.Millisecond
	for b.ctx.Err() == nil {
		if b.hooks.beforeSubscribe != nil {
			b.hooks.beforeSubscribe()
		}
		confirmed, err := b.session()
		if b.ctx.Err() != nil {
			return
		}
		b.onDown(err)
		if confirmed {
			backoff = 10 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, b.opt.ReconnectBackoff)
	}
}

// session runs one subscription until it breaks; confirmed reports whether
// Redis ever confirmed it.
func (b *bus) session() (confirmed bool, err error) {
	var ps *redis.PubSub
	if _, ok := b.rdb.(*redis.ClusterClient); ok {
		ps = b.rdb.SSubscribe(b.ctx, b.channel)
	} else {
		ps = b.rdb.Subscribe(b.ctx, b.channel)
	}
	b.mu.Lock()
	if b.ctx.Err() != nil {
		b.mu.Unlock()
		_ = ps.Close()
		return false, b.ctx.Err()
	}
	b.ps = ps
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.ps = nil
		b.mu.Unlock()
		_ = ps.Close()
	}()
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(b.ctx, b.opt.PingInterval)
		if err != nil {
			if !isTimeout(err) || b.ctx.Err() != nil {
				return confirmed, err
			}
			if pinged {
				return confirmed, errPingTimeout
			}
			if err := ps.Ping(b.ctx); err != nil {
				return confirmed, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Channel != b.channel {
				continue
			}
			if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
				return confirmed, errors.New("tiercache: unsubscribed by server")
			}
			confirmed = true
			clear(b.src)
			b.onUp()
		case *redis.Message:
			b.handle(m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// channelUp runs when Redis confirms the subscription: flush once more
// (anything filled before this point may have missed a message), catch up on
// group generations, and only then let L1 serve.
func (c *Cache[V]) channelUp() {
	c.flushL1()
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.L2Timeout*5)
	err := c.groups.refresh(ctx)
	cancel()
	if err != nil {
		c.opt.Logger.Warn("tiercache: group generations not refreshed", "err", err)
	}
	c.bus.up.Store(true)
	c.l1.enable(true)
	c.stats.subscribes.Add(1)
	c.opt.Logger.Info("tiercache: invalidation channel up", "channel", c.bus.channel)
	if c.opt.hooks.channelUp != nil {
		c.opt.hooks.channelUp()
	}
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
	}
	if c.opt.hooks.channelDown != nil {
		c.opt.hooks.channelDown()
	}
}

// handleMessage applies one invalidation broadcast. Own messages were applied
// before they were sent; malformed ones are counted and dropped. A gap in a
// publisher's sequence means a message was lost, so L1 is flushed.
func (c *Cache[V]) handleMessage(b *bus, payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil || m.V != messageVersion || m.Src == "" {
		c.stats.malformed.Add(1)
		c.opt.Logger.Warn("tiercache: malformed invalidation ignored", "len", len(payload), "err", err)
		return
	}
	c.stats.received.Add(1)
	if m.Src == c.opt.ReplicaID {
		c.stats.ownSkipped.Add(1)
		return
	}
	if last, ok := b.src[m.Src]; ok && m.Seq > last+1 {
		c.stats.gaps.Add(1)
		c.flushL1()
	}
	b.src[m.Src] = m.Seq
	if m.Flush {
		c.flushL1()
	}
	c.applyLocal(m.Keys, m.Groups)
	c.stats.applied.Add(1)
	if m.TS > 0 {
		c.stats.lag.observe(time.Since(time.UnixMicro(m.TS)))
	}
	if c.opt.hooks.onMessage != nil {
		c.opt.hooks.onMessage(m.Src, m.Keys)
	}
}

// flushL1 drops every L1 entry and fences every fill in flight, and counts it.
func (c *Cache[V]) flushL1() {
	c.l1.flush()
	c.stats.flushes.Add(1)
}
