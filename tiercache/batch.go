package tiercache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// LoadManyFunc loads the values of keys from the source of truth in one
// call. A key missing from the map is not found (and cached as such); an
// error fails every key of the call and nothing is cached. Like
// [LoadFunc], it runs under a context detached from the callers, bounded
// by [Options.LoadTimeout].
type LoadManyFunc[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// Item is one key's answer in [Cache.GetManyInfo]: its value, how it was
// found, and its error (nil, [ErrNotFound], or the loader's error).
type Item[V any] struct {
	Val  V
	Info Info
	Err  error
}

// GetMany returns the values of keys that exist, read as [Cache.Get] reads
// one key, but in a few round trips for all of them (docs/design.md §3.17).
// A key that does not exist is absent from the map. The error is the first
// error other than ErrNotFound (a loader's, or ctx's), with the values
// found so far. The options are [StaleIfError] and [SoftTimeout], which
// apply to each key as for Get; [InGroup] is an error.
func (c *Cache[V]) GetMany(ctx context.Context, keys []string, load LoadManyFunc[V], opts ...GetOption) (map[string]V, error) {
	items, err := c.GetManyInfo(ctx, keys, load, opts...)
	out := make(map[string]V, len(items))
	for k, it := range items {
		switch {
		case it.Err == nil:
			out[k] = it.Val
		case !errors.Is(it.Err, ErrNotFound) && err == nil:
			err = it.Err
		}
	}
	return out, err
}

// GetManyInfo answers every key of keys (duplicates once) with an [Item].
// L1 answers first (under the freshness lease, as for Get); the other keys
// are read from L2 in one round trip; the keys still missing take their
// leases in one pipelined round trip, wait where another replica holds
// one, and are loaded in one call of load. Per key it keeps Get's rules:
// a fill is fenced by the key's L1 token (rule 3) and written to L2 only
// under its lease (rule 4); a key whose fill is in flight in this replica,
// begun within the staleness bound unless this replica is caught up
// (rule 13), joins that fill instead, and a Get joins the batch's. With
// [StaleIfError], a key whose load failed (or, with [SoftTimeout], is still
// under way after the timeout) is answered from its fail-safe copy if one
// is young enough, marked Stale in its Info, each key on its own; every
// value the batch loads becomes its key's copy (docs/design.md §3.16). The
// error is ErrClosed, an invalid option, or ctx's when it ends first.
func (c *Cache[V]) GetManyInfo(ctx context.Context, keys []string, load LoadManyFunc[V], opts ...GetOption) (map[string]Item[V], error) {
	if t, ok := c.opt.Tracer.(ManyTracer); ok {
		ctx = t.StartGetMany(ctx, keys)
		items, err := c.getManyInfo(ctx, keys, load, opts)
		t.EndGetMany(ctx, batchInfo(items), err)
		return items, err
	}
	return c.getManyInfo(ctx, keys, load, opts)
}

// getManyInfo is GetManyInfo without the Tracer.
func (c *Cache[V]) getManyInfo(ctx context.Context, keys []string, load LoadManyFunc[V], opts []GetOption) (map[string]Item[V], error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if o.group != "" {
		return nil, fmt.Errorf("%w: InGroup does not apply to GetMany", errOptions)
	}
	p := plan{staleIfError: o.staleIfError, softTimeout: o.softTimeout}
	now := c.clockNow()
	out := make(map[string]Item[V], len(keys))
	l1ok := c.l1 != nil && len(keys) > 0 && c.l1Serves(now)
	var rest []string
	for _, k := range keys {
		if _, done := out[k]; done {
			continue
		}
		if err := validKey(k); err != nil {
			out[k] = Item[V]{Err: err}
			continue
		}
		if l1ok {
			if e, ok := c.l1.get(k, now); ok {
				out[k] = l1Item(e)
				continue
			}
		}
		out[k] = Item[V]{}
		rest = append(rest, k)
	}
	if len(rest) == 0 {
		return out, nil
	}
	return out, c.missMany(ctx, rest, load, now, p, out)
}

func l1Item[V any](e *l1Entry[V]) Item[V] {
	if e.neg {
		return Item[V]{Info: Info{Source: SourceL1, Negative: true}, Err: ErrNotFound}
	}
	return Item[V]{Val: e.val, Info: Info{Source: SourceL1}}
}

// missMany claims each key's fill in this replica's flight, joining those
// in flight, runs the batch of the keys it leads, and waits for them all.
func (c *Cache[V]) missMany(ctx context.Context, keys []string, load LoadManyFunc[V], now int64, p plan, out map[string]Item[V]) error {
	notBefore := int64(math.MinInt64)
	if !c.caughtUp(now) {
		notBefore = now - int64(c.opt.StalenessBound)
	}
	b := &manyFill[V]{c: c, ctx: c.fillContext(ctx), load: load}
	calls := make([]*flightCall[fillResult[V]], len(keys))
	joined := make([]bool, len(keys))
	for i, k := range keys {
		call, leader := c.flight.claim(k, now, notBefore)
		calls[i], joined[i] = call, !leader
		if leader {
			b.keys, b.calls = append(b.keys, k), append(b.calls, call)
		} else {
			c.stats.collapsed.Add(1)
		}
	}
	if len(b.keys) > 0 {
		b.start()
	}
	soft := newSoftWait(p)
	defer soft.stop()
	var failed []string
	for i, k := range keys {
		if it, ok := c.softStale(ctx, k, calls[i], p, soft); ok {
			out[k] = it
			continue
		}
		fr, err := calls[i].wait(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fr.info.Collapsed = joined[i]
		out[k] = Item[V]{Val: fr.val, Info: fr.info, Err: err}
		if p.staleIfError > 0 && failsOver(err) {
			failed = append(failed, k)
		}
	}
	if len(failed) > 0 { // the copies missing here read from Redis in one round trip
		c.copiesFromL2(failed, p)
		for _, k := range failed {
			it := out[k]
			it.Val, it.Info, it.Err = c.staleLocal(k, p, StaleError, it.Val, it.Info, it.Err)
			out[k] = it
		}
	}
	return nil
}

// softWait is a batch's soft timeout (docs/design.md §3.16): one timer
// for all its keys.
type softWait struct {
	timer   *time.Timer // nil: no soft timeout
	expired bool
}

func newSoftWait(p plan) *softWait {
	if p.staleIfError <= 0 || p.softTimeout <= 0 {
		return &softWait{}
	}
	return &softWait{timer: time.NewTimer(p.softTimeout)}
}

func (s *softWait) stop() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// softStale answers key from its fail-safe copy if its fill is still under
// way once the batch's soft timeout has passed; false when it must be
// waited for (no soft timeout, the fill finished, ctx ended, or no copy
// young enough). The fill goes on and fills the tiers as usual.
func (c *Cache[V]) softStale(ctx context.Context, key string, call *flightCall[fillResult[V]], p plan, s *softWait) (Item[V], bool) {
	if s.timer == nil {
		return Item[V]{}, false
	}
	if !s.expired {
		select {
		case <-call.done:
			return Item[V]{}, false
		case <-ctx.Done():
			return Item[V]{}, false
		case <-s.timer.C:
			s.expired = true
		}
	}
	select {
	case <-call.done:
		return Item[V]{}, false
	default:
	}
	v, info, err := c.stale(key, p, StaleTimeout, *new(V), Info{}, nil)
	if err != nil || !info.Stale {
		return Item[V]{}, false
	}
	return Item[V]{Val: v, Info: info}, true
}

// manyFill is the fill of the keys one GetManyInfo leads: the fill of
// [Cache.fill] for many keys at once.
type manyFill[V any] struct {
	c     *Cache[V]
	ctx   context.Context // the fill's, see [Cache.fillContext]
	load  LoadManyFunc[V]
	keys  []string
	calls []*flightCall[fillResult[V]]
	toks  []fenceToken
	infos []Info // what each key's answer says so far (LeaseWaited)
	done  []bool
	mu    sync.Mutex // guards leases
	lease map[int]string
}

// start takes the fence tokens, then reads L2 inline (bounded by
// L2Timeout) and hands the keys still missing to a goroutine that leases
// and loads them, as [Cache.fill] does for one key.
func (b *manyFill[V]) start() {
	c := b.c
	n := len(b.keys)
	b.toks, b.infos, b.done = make([]fenceToken, n), make([]Info, n), make([]bool, n)
	b.lease = make(map[int]string)
	if c.l1 != nil {
		for i, k := range b.keys {
			b.toks[i] = c.l1.token(k)
		}
	}
	var viaL2, direct []int
	for i, k := range b.keys {
		if c.l2 == nil || c.retry.pending(k) {
			direct = append(direct, i)
		} else {
			viaL2 = append(viaL2, i)
		}
	}
	if !b.guard(func() { viaL2, direct = b.readL2(viaL2, direct) }) {
		return
	}
	if len(viaL2)+len(direct) == 0 {
		return
	}
	go b.guard(func() { b.leaseAndLoad(viaL2, direct) })
}

// guard runs fn; a panic in it becomes an error for every key not yet
// answered, and every lease still held is released. (A codec's panics are
// caught where the codec is called, and are a miss or an unstored value,
// not an error.) It reports whether fn returned.
func (b *manyFill[V]) guard(fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			b.releaseAll()
			err := panicError(b.keys[0], r)
			for i := range b.keys {
				b.settle(i, fillResult[V]{}, err)
			}
		}
	}()
	fn()
	return true
}

// readL2 reads the keys of viaL2 in one round trip and answers those it
// finds; it returns the keys still to lease and those to load without a
// lease (all of them when Redis did not answer).
func (b *manyFill[V]) readL2(viaL2, direct []int) ([]int, []int) {
	if len(viaL2) == 0 {
		return nil, direct
	}
	raws, err := b.c.l2.getMany(b.ctx, b.pick(viaL2))
	if err != nil {
		return nil, append(direct, viaL2...)
	}
	missing := viaL2[:0:0]
	for j, i := range viaL2 {
		if raws[j] == nil || !b.fromL2(i, raws[j]) {
			missing = append(missing, i)
		}
	}
	return missing, direct
}

// fromL2 answers key i from a raw L2 value; false if it is undecodable.
func (b *manyFill[V]) fromL2(i int, raw []byte) bool {
	r, err, ok := b.c.fromL2(b.keys[i], b.toks[i], raw, plan{}, nil)
	if ok {
		r.info.LeaseWaited = b.infos[i].LeaseWaited
		b.settle(i, r, err)
	}
	return ok
}

// leaseAndLoad takes the leases of viaL2 in one round trip and loads the
// keys it leased and direct in one call while it waits (all at once, in
// the background) for the keys another replica is loading; those whose
// loader did not fill them are loaded by a second call. Loading its own
// keys first matters: two batches that split a set of keys' leases
// between them, each waiting for the other's keys before loading its own,
// would each wait LeaseWait and then load everything.
func (b *manyFill[V]) leaseAndLoad(viaL2, direct []int) {
	toLoad := direct
	var waited chan []int
	if len(viaL2) > 0 {
		token := randomToken()
		states, raws, err := b.c.l2.leaseMany(b.ctx, b.pick(viaL2), token)
		if err != nil {
			toLoad = append(toLoad, viaL2...)
		} else {
			var held []int
			for j, i := range viaL2 {
				switch states[j] {
				case 1:
					if !b.fromL2(i, raws[j]) {
						toLoad = append(toLoad, i)
					}
				case 2:
					b.c.stats.leasesTaken.Add(1)
					b.setLease(i, token)
					toLoad = append(toLoad, i)
				default:
					held = append(held, i)
				}
			}
			if len(held) > 0 {
				waited = make(chan []int, 1)
				go func() {
					var rest []int
					defer func() { waited <- rest }()
					b.guard(func() { rest = b.waitHeld(held) })
				}()
			}
		}
	}
	if len(toLoad) > 0 {
		b.loadAll(toLoad)
	}
	if waited != nil {
		if rest := <-waited; len(rest) > 0 {
			b.loadAll(rest)
		}
	}
}

// waitHeld waits, concurrently, for the keys whose lease another loader
// holds (see [l2.lease]); it returns those still to load.
func (b *manyFill[V]) waitHeld(held []int) []int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var toLoad []int
	for _, i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, found, lease, waited := b.c.l2.lease(b.ctx, b.keys[i], false)
			b.infos[i].LeaseWaited = waited
			if found && b.fromL2(i, raw) {
				return
			}
			if lease != "" {
				b.setLease(i, lease)
			}
			mu.Lock()
			toLoad = append(toLoad, i)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return toLoad
}

// loadAll runs the loader once for the keys of idx and installs what it
// returned, as [Cache.load] does for one key.
func (b *manyFill[V]) loadAll(idx []int) {
	c := b.c
	ctx, cancel := context.WithTimeout(b.ctx, c.opt.LoadTimeout)
	defer cancel()
	c.stats.loads.Add(1)
	began := c.clockNow()
	vals, err := b.load(ctx, b.pick(idx))
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.stats.loadErrors.Add(1)
		b.releaseAll()
		for _, i := range idx {
			b.settle(i, fillResult[V]{}, err)
		}
		return
	}
	stored, ttls := b.storeAll(ctx, idx, vals, began)
	for _, i := range idx {
		k := b.keys[i]
		val, ok := vals[k]
		if ok {
			c.failSafe.put(k, val, began)
		}
		res := fillResult[V]{val: val, info: b.infos[i]}
		res.info.Source, res.info.Negative = SourceLoader, !ok
		var refreshAt int64
		res.info.L2Stored = stored[i]
		if stored[i] && ok {
			refreshAt = c.refreshAt(c.clockNow(), ttls[i], ttls[i])
		}
		c.installInfo(&res.info, k, b.toks[i], val, !ok, refreshAt)
		if ok {
			b.settle(i, res, nil)
		} else {
			b.settle(i, res, ErrNotFound)
		}
	}
}

// storeAll fills L2 with every loaded key of idx whose lease it holds,
// each under its own lease, in a few round trips for all of them
// ([l2.fillMany]), stamped with began, when the load began; per key index
// whether it was stored, and its TTL.
func (b *manyFill[V]) storeAll(ctx context.Context, idx []int, vals map[string]V, began int64) (map[int]bool, map[int]time.Duration) {
	c := b.c
	var fills []l2Fill
	var at []int
	for _, i := range idx {
		lease := b.leaseOf(i)
		if lease == "" {
			continue
		}
		val, ok := vals[b.keys[i]]
		if f, encoded := c.encodeFill(ctx, b.keys[i], lease, val, !ok, plan{}, began); encoded {
			fills = append(fills, f)
			at = append(at, i)
		}
		b.setLease(i, "")
	}
	stored := make(map[int]bool, len(at))
	ttls := make(map[int]time.Duration, len(at))
	for j, ok := range c.l2.fillMany(ctx, fills) {
		stored[at[j]], ttls[at[j]] = ok, fills[j].ttl
	}
	return stored, ttls
}

func (b *manyFill[V]) pick(idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = b.keys[i]
	}
	return out
}

// settle answers key i once: its callers, and any Get that joined it.
func (b *manyFill[V]) settle(i int, r fillResult[V], err error) {
	b.mu.Lock()
	done := b.done[i]
	b.done[i] = true
	b.mu.Unlock()
	if done {
		return
	}
	call := b.calls[i]
	call.val, call.err = r, err
	b.c.flight.finish(b.keys[i], call)
}

func (b *manyFill[V]) setLease(i int, lease string) {
	b.mu.Lock()
	if lease == "" {
		delete(b.lease, i)
	} else {
		b.lease[i] = lease
	}
	b.mu.Unlock()
}

func (b *manyFill[V]) leaseOf(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lease[i]
}

// releaseAll gives up every lease still held, so other replicas' waiters
// need not sit out LeaseWait.
func (b *manyFill[V]) releaseAll() {
	b.mu.Lock()
	held := b.lease
	b.lease = make(map[int]string)
	b.mu.Unlock()
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.c.opt.L2Timeout)
	defer cancel()
	for i, lease := range held {
		b.c.l2.release(ctx, b.keys[i], lease)
	}
}
