package tiercache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/ratelog"
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
	// ErrInvalidKey is returned by every call given a key or group name the
	// cache cannot hold: one that contains NUL, or an empty group name given
	// to InvalidateGroup (docs/design.md §3.12).
	ErrInvalidKey = errors.New("tiercache: invalid key")
)

// LoadFunc loads the value of one key from the source of truth. It runs
// under a context detached from any one caller, bounded by
// [Options.LoadTimeout], because several callers may share its result.
// With an [Options.Tracer] that context carries the values (the span) of
// the read that started the load, still without its cancellation.
type LoadFunc[V any] func(ctx context.Context) (V, error)

// Source says which tier answered a [Cache.GetInfo].
type Source uint8

// The sources of a value.
const (
	SourceL1       Source = iota + 1 // this replica's LRU
	SourceL2                         // Redis
	SourceLoader                     // the LoadFunc (the database)
	SourceFailSafe                   // the fail-safe copy, after the loader failed (docs/design.md §3.16)
)

// String returns "l1", "l2", "loader" or "failsafe".
func (s Source) String() string {
	switch s {
	case SourceL1:
		return "l1"
	case SourceL2:
		return "l2"
	case SourceLoader:
		return "loader"
	case SourceFailSafe:
		return "failsafe"
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
	Fenced      bool   // a fill's L1 install was refused: an invalidation (or flush) raced it
	L2Stored    bool   // the value was written to L2
	Negative    bool   // the answer is a cached or fresh "not found"

	// Stale is set only on a read with [StaleIfError] that was answered
	// from the fail-safe copy; Age is then how long ago the load that read
	// the copy began, and StaleReason is StaleError or StaleTimeout.
	Stale       bool
	Age         time.Duration
	StaleReason string
}

// Cache is a typed two-tier read-through cache. See the package
// documentation for the model. A Cache is safe for concurrent use.
type Cache[V any] struct {
	opt   Options
	codec Codec[V]
	rdb   redis.UniversalClient // nil in ModeL1Only

	l1     *l1[V] // nil in ModeL2Only
	l2     *l2    // nil in ModeL1Only
	flight flight[fillResult[V]]
	// failSafe holds the last value read of each key (from the loader or
	// L2) for reads with StaleIfError; invalidations leave it alone
	// (docs/design.md §3.16).
	failSafe failSafe[V]
	groups   groups
	bus      *bus // nil unless ModeTiered and not Standalone
	stats    stats
	retry    retryQueue
	ref      refresher
	warn     *ratelog.Limiter

	base time.Time // the origin of the clock, see clockNow

	// closeMu is held shared by every Invalidate and exclusively by Close,
	// so that Close's last retry pass sees every invalidation that was
	// under way when it was called.
	closeMu sync.RWMutex
	closed  atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
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
	c := &Cache[V]{opt: opt, codec: codec, stop: make(chan struct{}), base: time.Now()}
	c.warn = ratelog.New(c.opt.Logger, time.Second)
	c.stats.init()
	c.ref.init()
	if opt.Mode != ModeL1Only {
		c.rdb = rdb
		c.l2 = newL2(rdb, &c.opt, &c.stats)
	}
	if opt.Mode != ModeL2Only {
		c.l1, err = newL1[V](opt.L1Size, opt.L1Shards, opt.L1Policy)
		if err != nil {
			return nil, err
		}
	}
	if c.failSafe, err = newFailSafe[V](opt.FailSafeSize); err != nil {
		return nil, err
	}
	c.groups.init(c.l2)
	switch {
	case opt.Mode == ModeTiered && !opt.Standalone:
		c.bus = newBus(c)
		c.bus.start(&c.wg)
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
	return c.GetInfoAt(ctx, time.Time{}, key, load, opts...)
}

// GetAt is [Cache.Get] of a read that began at start, a reading of
// time.Now the caller took when its read began (an HTTP server: when the
// request arrived) and carrying its monotonic clock reading. The freshness
// lease (docs/design.md §3.13) is then checked as of start, so an L1 hit
// takes no clock reading of its own: a read that began more than
// StalenessBound after a write was acknowledged still never returns the
// older value, counting from start. A start without a monotonic reading
// (the zero Time, one from [time.Time.Round] or a parse) is ignored and the
// cache reads its own clock. Do not pass the start of a request that wrote
// and then reads what it wrote on another replica's behalf, nor a start
// taken long before the read (a stream's): the guarantee is counted from it.
func (c *Cache[V]) GetAt(ctx context.Context, start time.Time, key string, load LoadFunc[V], opts ...GetOption) (V, error) {
	v, _, err := c.GetInfoAt(ctx, start, key, load, opts...)
	return v, err
}

// GetInfoAt is [Cache.GetAt] that also says how the value was found.
func (c *Cache[V]) GetInfoAt(ctx context.Context, start time.Time, key string, load LoadFunc[V], opts ...GetOption) (V, Info, error) {
	if t := c.opt.Tracer; t != nil {
		ctx = t.StartGet(ctx, key)
		v, info, err := c.getInfo(ctx, start, key, load, opts)
		t.EndGet(ctx, info, err)
		return v, info, err
	}
	return c.getInfo(ctx, start, key, load, opts)
}

// getInfo is GetInfoAt without the Tracer.
func (c *Cache[V]) getInfo(ctx context.Context, start time.Time, key string, load LoadFunc[V], opts []GetOption) (V, Info, error) {
	var zero V
	if c.closed.Load() {
		return zero, Info{}, ErrClosed
	}
	if err := validKey(key); err != nil {
		return zero, Info{}, err
	}
	now := c.readStart(start)
	var p plan
	if len(opts) > 0 {
		var err error
		if key, p, err = c.applyOptions(ctx, key, now, opts); err != nil {
			return zero, Info{}, err
		}
	}
	if c.l1 != nil && !p.skipL1 && c.l1Serves(now) {
		if e, ok := c.l1.get(key, now); ok {
			if e.neg {
				return zero, Info{Source: SourceL1, Negative: true}, ErrNotFound
			}
			if e.refreshAt != 0 && now >= e.refreshAt {
				c.refreshOnHit(key, e, now, load, p)
			}
			return e.val, Info{Source: SourceL1}, nil
		}
	}
	if p.staleIfError > 0 {
		return c.missFailSafe(ctx, key, load, now, p)
	}
	return c.miss(ctx, key, load, now, p)
}

// plan says which tiers one read may use.
type plan struct {
	skipL1, skipL2 bool
	grouped        bool // the key is a page of a group: its own L2 TTL

	staleIfError, softTimeout time.Duration // docs/design.md §3.16; zero: off
}

// l1Serves reports whether L1 may answer a read that began at now: the
// invalidation channel is confirmed and, on a replica that has one, this
// replica has proved within StalenessBound that it applied every
// invalidation published before (docs/design.md §3.13). A lapse bypasses L1 without
// flushing it: the messages it is behind on arrive in order and evict what
// they must before the proof comes back.
func (c *Cache[V]) l1Serves(now int64) bool {
	if !c.l1.usable() {
		c.stats.bypassDown.Add(1)
		return false
	}
	if b := c.bus; b != nil {
		b.want()
		if !b.fresh(now) {
			if b.waking(now) {
				c.stats.bypassWaking.Add(1)
				return false
			}
			c.stats.bypassStale.Add(1)
			b.noteLapse(now)
			return false
		}
	}
	return true
}

// caughtUp reports whether every invalidation acknowledged more than
// StalenessBound before now has been applied here, so that in-memory state
// (loads in flight, group generations) may be trusted. Without a channel it
// holds only for a cache no other replica writes to.
func (c *Cache[V]) caughtUp(now int64) bool {
	if c.bus == nil {
		return c.l2 == nil || c.opt.Standalone
	}
	return c.bus.up.Load() && c.bus.fresh(now)
}

type fillResult[V any] struct {
	val  V
	info Info
}

// miss collapses concurrent misses of key in this replica into one fill. A
// read joins a fill in flight only if this replica is caught up (then every
// invalidation that could make that fill's result stale has already made it
// unjoinable) or the fill began within StalenessBound before the read.
func (c *Cache[V]) miss(ctx context.Context, key string, load LoadFunc[V], now int64, p plan) (V, Info, error) {
	var zero V
	notBefore := int64(math.MinInt64)
	if !c.caughtUp(now) {
		notBefore = now - int64(c.opt.StalenessBound)
	}
	fr, err, shared := c.flight.do(ctx, key, now, notBefore, func() (fillResult[V], error, func() (fillResult[V], error)) {
		return c.fill(c.fillContext(ctx), key, load, p)
	})
	fr.info.Collapsed = shared
	if shared {
		c.stats.collapsed.Add(1)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return zero, fr.info, ErrNotFound
		}
		return zero, fr.info, err
	}
	return fr.val, fr.info, nil
}

// fillContext is the context a fill led by the read of ctx runs under:
// context.Background, or with a Tracer, ctx without its cancellation, so
// that the fill's Redis calls and load are children of the read's span.
func (c *Cache[V]) fillContext(ctx context.Context) context.Context {
	if c.opt.Tracer == nil {
		return context.Background()
	}
	return context.WithoutCancel(ctx)
}

// fill reads L2 and then the loader, and installs what it found. It runs
// once per key per replica at a time, detached from the callers' contexts:
// the L2 read on the leader's goroutine, the rest (lease wait and load) on
// one of its own, see [flight.do].
//
// The L1 fence token is taken before anything is read: an invalidation of
// key that arrives while the fill is under way, whether it is a write that
// raced the L2 read or the database read, bumps the key's generation, and
// install then refuses the value (docs/design.md §3.3). The L2 write is guarded by
// the lease token instead, which the writer's delete removes (§3.4). A key
// waiting for a retried invalidation is kept out of L2: the failed delete
// may have left the old value there.
func (c *Cache[V]) fill(ctx context.Context, key string, load LoadFunc[V], p plan) (fillResult[V], error, func() (fillResult[V], error)) {
	var tok fenceToken
	if c.l1 != nil && !p.skipL1 {
		tok = c.l1.token(key)
	}
	if c.l2 == nil || p.skipL2 || c.retry.pending(key) {
		return fillResult[V]{}, nil, func() (fillResult[V], error) {
			return c.load(ctx, key, load, tok, "", p, fillResult[V]{})
		}
	}
	raw, err := c.l2.get(ctx, key)
	if err == nil && raw != nil {
		if r, err, ok := c.fromL2(key, tok, raw, p, load); ok {
			return r, err, nil
		}
	}
	redisUp := err == nil
	return fillResult[V]{}, nil, func() (fillResult[V], error) {
		if !redisUp {
			return c.load(ctx, key, load, tok, "", p, fillResult[V]{})
		}
		return c.leaseAndLoad(ctx, key, load, tok, p)
	}
}

// leaseAndLoad takes the key's lease in L2 (or waits for another replica's
// loader) and loads.
func (c *Cache[V]) leaseAndLoad(ctx context.Context, key string, load LoadFunc[V], tok fenceToken, p plan) (fillResult[V], error) {
	var res fillResult[V]
	raw, found, lease, waited := c.l2.lease(ctx, key, true)
	if found {
		if r, err, ok := c.fromL2(key, tok, raw, p, nil); ok {
			r.info.LeaseWaited = waited
			return r, err
		}
	}
	res.info.LeaseWaited = waited
	return c.load(ctx, key, load, tok, lease, p, res)
}

// load runs the loader and installs its result: in L2 if lease still holds,
// in L1 if no invalidation came since tok was taken. parent is the fill's
// context (see fillContext), or for a refresh one that Close cancels.
func (c *Cache[V]) load(parent context.Context, key string, load LoadFunc[V], tok fenceToken, lease string, p plan, res fillResult[V]) (fillResult[V], error) {
	ctx, cancel := context.WithTimeout(parent, c.opt.LoadTimeout)
	defer cancel()
	if lease != "" {
		defer c.l2.dropHeld(lease) // a panicking loader ends no lease
	}
	c.stats.loads.Add(1)
	began := c.clockNow()
	val, err := load(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.stats.loadErrors.Add(1)
		if lease != "" {
			c.l2.release(ctx, key, lease)
		}
		return res, err
	}
	neg := err != nil
	res.val, res.info.Source, res.info.Negative = val, SourceLoader, neg
	if !neg {
		c.failSafe.put(key, val, began)
	}
	var refreshAt int64
	if lease != "" {
		var ttl time.Duration
		res.info.L2Stored, ttl = c.storeL2(ctx, key, lease, val, neg, p, began)
		if res.info.L2Stored && !neg {
			refreshAt = c.refreshAt(c.clockNow(), ttl, ttl)
		}
	}
	if !p.skipL1 {
		c.installInfo(&res.info, key, tok, val, neg, refreshAt)
	}
	if neg {
		return res, ErrNotFound
	}
	return res, nil
}

// fromL2 answers from a value read in L2. ok is false when the value cannot
// be decoded (the codec errs or panics): it is deleted and the fill goes on as after a miss, so a codec
// change in a rolling deploy costs loads, not errors. A value read in the
// last part of its TTL starts a refresh with load, if not nil
// (docs/design.md §3.18).
func (c *Cache[V]) fromL2(key string, tok fenceToken, raw []byte, p plan, load LoadFunc[V]) (res fillResult[V], err error, ok bool) {
	res.info.Source = SourceL2
	neg, payload, st := decodeL2(raw)
	if !neg {
		v, err := unmarshal(c.codec, payload)
		if err != nil {
			c.stats.decodeErrors.Add(1)
			c.warn.Warn("decode", "tiercache: undecodable L2 value deleted", "key", key, "err", err)
			ctx, cancel := context.WithTimeout(context.Background(), c.opt.L2Timeout)
			c.l2.del(ctx, key)
			cancel()
			return res, nil, false
		}
		res.val = v
		c.keepFromL2(key, v, st)
	}
	c.stats.l2Hits.Add(1)
	if c.opt.hooks.afterL2Read != nil {
		c.opt.hooks.afterL2Read(key)
	}
	res.info.Negative = neg
	refreshAt := c.refreshFromL2(key, st, neg, p, load)
	if !p.skipL1 {
		c.installInfo(&res.info, key, tok, res.val, neg, refreshAt)
	}
	if neg {
		return res, ErrNotFound, true
	}
	return res, nil, true
}

// refreshFromL2 starts a refresh of a value read in L2 within its refresh
// window, and otherwise returns when its L1 entry should (0 for never; at
// once if the refresh could not start, a slot or the key being busy).
func (c *Cache[V]) refreshFromL2(key string, st l2Stamp, neg bool, p plan, load LoadFunc[V]) int64 {
	if neg || st.ttl <= 0 || c.opt.RefreshAhead <= 0 {
		return 0
	}
	remaining := time.Duration(st.expires-c.wallNow().UnixMilli()) * time.Millisecond
	ttl := time.Duration(st.ttl) * time.Millisecond
	if remaining <= c.refreshWindow(ttl) {
		if c.refresh(key, load, p) {
			return 0
		}
		return c.clockNow() // none could start: the next L1 hit tries
	}
	return c.refreshAt(c.clockNow(), remaining, ttl)
}

// l2TTL is the L2 TTL of a fill, before jitter.
func (c *Cache[V]) l2TTL(neg bool, p plan) time.Duration {
	switch {
	case neg:
		return c.opt.NegativeTTL
	case p.grouped:
		return c.opt.GroupL2TTL
	}
	return c.opt.L2TTL
}

// storeL2 fills L2 under lease with what the load that began at began
// (a clockNow reading) read; it reports whether it did, and the TTL. A
// value the codec cannot encode (an error or a panic) is not stored, and
// the lease is released so other replicas load at once.
func (c *Cache[V]) storeL2(ctx context.Context, key, lease string, val V, neg bool, p plan, began int64) (bool, time.Duration) {
	f, ok := c.encodeFill(ctx, key, lease, val, neg, p, began)
	if !ok {
		return false, 0
	}
	return c.l2.fill(ctx, f), f.ttl
}

// encodeFill encodes val for an L2 fill under lease, stamped with its
// expiry and its lifetime from when the load that read it began (began, a
// clockNow reading), so that a replica reading it knows when it was read
// from the database (docs/design.md §3.16, §3.18); a value the codec
// cannot encode releases the lease.
func (c *Cache[V]) encodeFill(ctx context.Context, key, lease string, val V, neg bool, p plan, began int64) (l2Fill, bool) {
	var payload []byte
	if !neg {
		b, err := marshal(c.codec, val)
		if err != nil {
			c.stats.encodeErrors.Add(1)
			c.warn.Warn("encode", "tiercache: value not stored in L2, the codec failed", "key", key, "err", err)
			c.l2.release(ctx, key, lease)
			return l2Fill{}, false
		}
		payload = b
	}
	ttl := c.jitter(c.l2TTL(neg, p))
	st := stampFill(c.wallNow(), time.Duration(c.clockNow()-began), ttl)
	keep := !neg && !p.grouped && c.opt.FailSafeL2TTL > 0
	return l2Fill{key: key, lease: lease, raw: encodeL2(neg, payload, st), ttl: ttl, keep: keep}, true
}

// install puts val in L1 unless an invalidation came since tok; refreshAt
// is when a hit on it should start an eager refresh (0 for never).
func (c *Cache[V]) install(key string, tok fenceToken, val V, neg bool, refreshAt int64) bool {
	if c.l1 == nil {
		return false
	}
	ttl := c.opt.L1TTL
	if neg && c.opt.NegativeTTL < ttl {
		ttl = c.opt.NegativeTTL
	}
	ok := c.l1.install(key, tok, &l1Entry[V]{key: key, val: val, neg: neg, expires: c.clockNow() + int64(c.jitter(ttl)), refreshAt: refreshAt})
	if !ok {
		c.stats.fencedFills.Add(1)
	}
	return ok
}

// installInfo is install that records in info whether the value was
// stored in L1 or fenced.
func (c *Cache[V]) installInfo(info *Info, key string, tok fenceToken, val V, neg bool, refreshAt int64) {
	info.L1Stored = c.install(key, tok, val, neg, refreshAt)
	info.Fenced = c.l1 != nil && !info.L1Stored
}

// Close stops the subscriber and the retry loop and waits for them. It does
// not close the Redis client. Invalidations under way when Close is called
// finish first, and whatever is queued for retry is attempted once more; if
// that fails too, Close returns an error wrapping [ErrDeferred] (a caller
// with an outbox loses nothing: its rows stay pending).
func (c *Cache[V]) Close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	c.waitInvalidations()
	c.ref.close()
	close(c.stop)
	if c.bus != nil {
		c.bus.close()
	}
	c.wg.Wait()
	if n := c.retry.size.Load(); n > 0 || c.retry.overflow.Load() {
		return fmt.Errorf("%w: %d keys and groups undelivered at close", ErrDeferred, n)
	}
	return nil
}

// waitInvalidations waits for the invalidations under way, which hold
// closeMu shared; later ones see closed. The closeWaiting hook runs only
// when one is under way, before the wait.
func (c *Cache[V]) waitInvalidations() {
	if !c.closeMu.TryLock() {
		runHook(c.opt.hooks.closeWaiting)
		c.closeMu.Lock()
	}
	c.closeMu.Unlock()
}

// Ready reports whether L1 may be used: the invalidation channel is
// confirmed, or no channel is needed in this mode. A confirmed channel may
// still be lapsed (see [Stats].FreshnessAge); reads then bypass L1. A
// closed cache is never ready.
func (c *Cache[V]) Ready() bool {
	return !c.closed.Load() && (c.bus == nil || c.bus.up.Load())
}

// Mode returns the mode the cache runs in.
func (c *Cache[V]) Mode() Mode { return c.opt.Mode }

// L1TTL returns the maximum age of an L1 entry.
func (c *Cache[V]) L1TTL() time.Duration { return c.opt.L1TTL }

// StalenessBound returns how far behind the invalidation stream L1 may be
// before reads bypass it (Options.StalenessBound).
func (c *Cache[V]) StalenessBound() time.Duration { return c.opt.StalenessBound }

// ReplicaID returns the identity this cache publishes under.
func (c *Cache[V]) ReplicaID() string { return c.opt.ReplicaID }

// Len returns the number of entries in L1.
func (c *Cache[V]) Len() int {
	if c.l1 == nil {
		return 0
	}
	return c.l1.len()
}

// clockNow reads this process's monotonic clock, in nanoseconds since the
// cache was made. Every read of the hot path that was not handed its start
// ([Cache.GetAt]) pays for one reading (about 25ns): a coarse clock kept by a ticking goroutine would be cheaper, but
// that goroutine is exactly what CPU starvation delays, and a late clock
// would make a lapsed replica look fresh (docs/design.md §3.13).
func (c *Cache[V]) clockNow() int64 {
	if c.opt.hooks.now != nil {
		return c.opt.hooks.now()
	}
	return int64(time.Since(c.base))
}

// readStart is the clock reading of a read that began at start (see
// [Cache.GetAt]): start itself on this cache's clock when it carries a
// monotonic reading, which costs a subtraction, else clockNow. Time's ==
// compares the monotonic reading too, so start differs from start.Round(0),
// which strips it, exactly when it has one.
func (c *Cache[V]) readStart(start time.Time) int64 {
	if c.opt.hooks.now != nil || start == start.Round(0) {
		return c.clockNow()
	}
	return int64(start.Sub(c.base))
}
