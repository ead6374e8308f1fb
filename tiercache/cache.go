package tiercache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// Sentinel errors.
var (
	// ErrNotFound is returned by [Cache.Get] when the loader reported that the
	// value does not exist, now or from a cached negative result. A loader
	// signals it by returning ErrNotFound (or an error wrapping it).
	ErrNotFound = errors.New("tiercache: not found")
	// ErrClosed is returned by every call on a closed [Cache].
	ErrClosed = errors.New("tiercache: closed")
	// ErrDeferred is returned (wrapped) by [Cache.Invalidate] and
	// [Cache.InvalidateGroup] when the local part of an invalidation is done
	// but Redis did not take the delete or the publish: the rest is queued
	// and retried by this replica. A caller that keeps a durable record of
	// its invalidations (an outbox) keeps the record pending until a call
	// returns nil, and may replay it on any replica: invalidations are
	// idempotent.
	ErrDeferred = errors.New("tiercache: invalidation deferred")
)

// LoadFunc loads the value of one key from the source of truth. It runs
// under a context detached from any one caller, bounded by
// [Options.LoadTimeout], because several callers may share its result.
type LoadFunc[V any] func(ctx context.Context) (V, error)

// Source says which tier answered a [Cache.GetInfo].
type Source uint8

// The sources of a value.
const (
	SourceL1     Source = iota + 1 // this replica's LRU
	SourceL2                       // Redis
	SourceLoader                   // the LoadFunc (the database)
)

// String returns "l1", "l2" or "loader".
func (s Source) String() string {
	switch s {
	case SourceL1:
		return "l1"
	case SourceL2:
		return "l2"
	case SourceLoader:
		return "loader"
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// Info describes how a [Cache.GetInfo] was answered; it is what an RFC 9211
// Cache-Status header needs.
type Info struct {
	Source      Source // the tier that produced the value
	Collapsed   bool   // waited on another caller's load in this replica
	LeaseWaited bool   // waited on another replica's load (the L2 lease)
	L1Stored    bool   // the value was installed in L1
	L2Stored    bool   // the value was written to L2
	Negative    bool   // the answer is a cached or fresh "not found"
}

// Cache is a typed two-tier read-through cache. See the package
// documentation for the model. A Cache is safe for concurrent use.
type Cache[V any] struct {
	opt   Options
	codec Codec[V]
	rdb   redis.UniversalClient // nil in ModeL1Only

	l1     *l1[V] // nil in ModeL2Only
	l2     *l2    // nil in ModeL1Only
	sf     singleflight.Group
	groups groups
	bus    *bus // nil unless ModeTiered and not Standalone
	stats  stats
	retry  retryQueue

	clock  atomic.Int64 // coarse unix nanoseconds, see tick
	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// New returns a Cache that uses rdb (owned by the caller, who closes it after
// [Cache.Close]) for L2 and invalidations, and codec to store values in
// Redis. rdb may be a single-node, Sentinel or Cluster client; in Cluster it
// uses sharded pub/sub. rdb may be nil only in ModeL1Only. A nil codec means
// [JSONCodec].
func New[V any](rdb redis.UniversalClient, codec Codec[V], opt Options) (*Cache[V], error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if rdb == nil && opt.Mode != ModeL1Only {
		return nil, fmt.Errorf("%w: a Redis client is required in mode %s", errOptions, opt.Mode)
	}
	if codec == nil {
		codec = JSONCodec[V]{}
	}
	c := &Cache[V]{opt: opt, codec: codec, stop: make(chan struct{})}
	c.clock.Store(time.Now().UnixNano())
	c.stats.init()
	if opt.Mode != ModeL1Only {
		c.rdb = rdb
		c.l2 = newL2(rdb, &c.opt, &c.stats)
	}
	if opt.Mode != ModeL2Only {
		c.l1, err = newL1[V](opt.L1Size)
		if err != nil {
			return nil, err
		}
	}
	c.groups.init(c.l2)
	c.wg.Add(1)
	go c.tick()
	switch {
	case opt.Mode == ModeTiered && !opt.Standalone:
		c.bus = newBus(c)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.bus.run()
		}()
	case c.l1 != nil:
		c.l1.enable(true)
	}
	if c.l2 != nil {
		c.wg.Add(1)
		go c.retryLoop()
	}
	return c, nil
}

// Get returns the value of key, from L1, L2 or load, in that order. It
// returns ErrNotFound if the value does not exist (possibly cached as such).
// Errors from load are returned and never cached.
func (c *Cache[V]) Get(ctx context.Context, key string, load LoadFunc[V], opts ...GetOption) (V, error) {
	v, _, err := c.GetInfo(ctx, key, load, opts...)
	return v, err
}

// GetInfo is [Cache.Get] that also says how the value was found.
func (c *Cache[V]) GetInfo(ctx context.Context, key string, load LoadFunc[V], opts ...GetOption) (V, Info, error) {
	var zero V
	if c.closed.Load() {
		return zero, Info{}, ErrClosed
	}
	if len(opts) > 0 {
		key = c.applyOptions(ctx, key, opts)
	}
	if c.l1 != nil && c.l1.usable() {
		if e, ok := c.l1.get(key, c.now()); ok {
			c.stats.l1Hits.Add(1)
			if e.neg {
				return zero, Info{Source: SourceL1, Negative: true}, ErrNotFound
			}
			return e.val, Info{Source: SourceL1}, nil
		}
		c.stats.l1Misses.Add(1)
	}
	return c.miss(ctx, key, load)
}

type fillResult[V any] struct {
	val  V
	info Info
}

// miss collapses concurrent misses of key in this replica into one fill.
func (c *Cache[V]) miss(ctx context.Context, key string, load LoadFunc[V]) (V, Info, error) {
	var zero V
	led := false
	ch := c.sf.DoChan(key, func() (any, error) {
		led = true
		r, err := c.fill(key, load)
		return r, err
	})
	select {
	case r := <-ch:
		fr, _ := r.Val.(fillResult[V])
		fr.info.Collapsed = !led
		if !led {
			c.stats.collapsed.Add(1)
		}
		if r.Err != nil {
			if errors.Is(r.Err, ErrNotFound) {
				return zero, fr.info, ErrNotFound
			}
			return zero, fr.info, r.Err
		}
		return fr.val, fr.info, nil
	case <-ctx.Done():
		return zero, Info{}, ctx.Err()
	}
}

// fill reads L2 and then the loader, and installs what it found. It runs
// once per key per replica at a time, detached from the callers' contexts.
//
// The L1 fence token is taken before anything is read: an invalidation of
// key that arrives while the fill is under way, whether it is a write that
// raced the L2 read or the database read, bumps the key's generation, and
// install then refuses the value (DESIGN §3.3). The L2 write is guarded by
// the lease token instead, which the writer's delete removes (§3.4).
func (c *Cache[V]) fill(key string, load LoadFunc[V]) (fillResult[V], error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.LoadTimeout)
	defer cancel()
	var res fillResult[V]
	var tok fenceToken
	if c.l1 != nil {
		tok = c.l1.token(key)
	}
	lease := ""
	if c.l2 != nil && !c.retry.pending(key) {
		raw, found, leaseTok, waited := c.l2.getOrLease(ctx, key)
		res.info.LeaseWaited = waited
		lease = leaseTok
		if found {
			return c.fromL2(key, tok, raw, res)
		}
	}
	c.stats.loads.Add(1)
	val, err := load(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.stats.loadErrors.Add(1)
		if lease != "" {
			c.l2.release(key, lease)
		}
		return res, err
	}
	neg := err != nil
	res.val, res.info.Source, res.info.Negative = val, SourceLoader, neg
	if lease != "" {
		res.info.L2Stored = c.storeL2(key, lease, val, neg)
	}
	res.info.L1Stored = c.install(key, tok, val, neg)
	if neg {
		return res, ErrNotFound
	}
	return res, nil
}

func (c *Cache[V]) fromL2(key string, tok fenceToken, raw []byte, res fillResult[V]) (fillResult[V], error) {
	res.info.Source = SourceL2
	neg, payload := decodeL2(raw)
	if !neg {
		v, err := c.codec.Unmarshal(payload)
		if err != nil {
			// A value we cannot decode is treated as a miss next time.
			c.stats.decodeErrors.Add(1)
			c.l2.del(key)
			return res, fmt.Errorf("tiercache: decode L2 value of %q: %w", key, err)
		}
		res.val = v
	}
	c.stats.l2Hits.Add(1)
	if c.opt.hooks.afterL2Read != nil {
		c.opt.hooks.afterL2Read(key)
	}
	res.info.Negative = neg
	res.info.L1Stored = c.install(key, tok, res.val, neg)
	if neg {
		return res, ErrNotFound
	}
	return res, nil
}

func (c *Cache[V]) storeL2(key, lease string, val V, neg bool) bool {
	var payload []byte
	if !neg {
		b, err := c.codec.Marshal(val)
		if err != nil {
			c.stats.encodeErrors.Add(1)
			c.l2.release(key, lease)
			return false
		}
		payload = b
	}
	ttl := c.opt.L2TTL
	if neg {
		ttl = c.opt.NegativeTTL
	}
	return c.l2.fill(key, lease, encodeL2(neg, payload), c.jitter(ttl))
}

func (c *Cache[V]) install(key string, tok fenceToken, val V, neg bool) bool {
	if c.l1 == nil {
		return false
	}
	ttl := c.opt.L1TTL
	if neg && c.opt.NegativeTTL < ttl {
		ttl = c.opt.NegativeTTL
	}
	ok := c.l1.install(key, tok, &l1Entry[V]{val: val, neg: neg, expires: c.now() + int64(c.jitter(ttl))})
	if !ok {
		c.stats.fencedFills.Add(1)
	}
	return ok
}

// Close stops the subscriber and the retry loop and waits for them. It does
// not close the Redis client. Pending invalidation retries are attempted
// once more before Close returns.
func (c *Cache[V]) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	close(c.stop)
	if c.bus != nil {
		c.bus.close()
	}
	c.wg.Wait()
	return nil
}

// Ready reports whether L1 may be used: the invalidation channel is
// confirmed, or no channel is needed in this mode.
func (c *Cache[V]) Ready() bool {
	return c.bus == nil || c.bus.up.Load()
}

// Mode returns the mode the cache runs in.
func (c *Cache[V]) Mode() Mode { return c.opt.Mode }

// L1TTL returns the staleness bound of L1.
func (c *Cache[V]) L1TTL() time.Duration { return c.opt.L1TTL }

// ReplicaID returns the identity this cache publishes under.
func (c *Cache[V]) ReplicaID() string { return c.opt.ReplicaID }

// Len returns the number of entries in L1.
func (c *Cache[V]) Len() int {
	if c.l1 == nil {
		return 0
	}
	return c.l1.lru.Len()
}

func (c *Cache[V]) now() int64 {
	if c.opt.hooks.now != nil {
		return c.opt.hooks.now()
	}
	return c.clock.Load()
}

// tick keeps the coarse clock: a hit compares against it instead of calling
// time.Now, which would cost as much as the LRU lookup itself.
func (c *Cache[V]) tick() {
	defer c.wg.Done()
	t := time.NewTicker(clockResolution)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			c.clock.Store(now.UnixNano())
		case <-c.stop:
			return
		}
	}
}

// clockResolution is the granularity of L1 expiry; the staleness bound is
// L1TTL plus at most this much.
const clockResolution = 5 * time.Millisecond
