package tiercache

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

// With Options.ScriptFreeMiss a single key's lease is taken on a connection
// of its own, which the fill then uses: one round trip sends SET NX PX (the
// lease), GET (the value, in case another replica filled it meanwhile),
// WATCH on the lease and GET of the lease; the fill is then MULTI, SET, DEL,
// EXEC, a second. That is as many round trips as the scripts take, one
// fewer than the WATCH transaction of casWrite. The WATCH comes after the
// SET NX because Redis marks a watched key changed by the watching client's
// own writes too; the GET after it confirms that the lease still held our
// token when the watch began. From then on, a writer's DEL of the lease, its
// expiry or another replica's SET makes the EXEC write nothing (rule 4,
// docs/design.md §3.4).
//
// The connection is borrowed from the client's pool for the load, so at
// most half of the pool is held at once (heldSlots); a miss that finds
// every slot taken, and a batch's leases, fill by casWrite instead. A
// connection goes back to the pool only with no WATCH left on it.

// heldConn is the connection of one script-free lease.
type heldConn struct {
	conn      *redis.Conn
	armed     bool // a WATCH may be active on conn
	confirmed bool // the lease held our token when the WATCH began
}

// held is the set of connections of leases that wait for their fill.
type held struct {
	slots chan struct{} // one per connection held; nil: none is held

	mu      sync.Mutex
	byToken map[string]*heldConn // guarded by mu
}

// heldSlots is how many connections rdb's pool may lend to leases at once:
// half of its pool, and none for a client of another kind.
func heldSlots(rdb redis.UniversalClient) int {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().PoolSize / 2
	case *redis.ClusterClient:
		return c.Options().PoolSize / 2
	}
	return 0
}

// holdConn returns a connection for key's lease, on the node that holds
// key; nil when the miss path uses scripts, or no slot or node is at hand.
func (l *l2) holdConn(ctx context.Context, key string) *heldConn {
	if !l.opt.ScriptFreeMiss || l.held.slots == nil {
		return nil
	}
	select {
	case l.held.slots <- struct{}{}:
	default:
		return nil
	}
	cl, err := l.watchClient(ctx, l.leaseKey(key))
	if err != nil || cl == nil {
		<-l.held.slots
		return nil
	}
	return &heldConn{conn: cl.Conn()}
}

// unhold gives h's connection back to the pool, first clearing a WATCH
// that may still be on it, and frees its slot.
func (l *l2) unhold(h *heldConn) {
	if h.armed {
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.L2Timeout)
		_ = h.conn.Do(ctx, "unwatch").Err()
		cancel()
	}
	_ = h.conn.Close()
	<-l.held.slots
}

// keepHeld files h under token until the fill or release of that lease.
func (l *l2) keepHeld(token string, h *heldConn) {
	l.held.mu.Lock()
	defer l.held.mu.Unlock()
	if l.held.byToken == nil {
		l.held.byToken = make(map[string]*heldConn)
	}
	l.held.byToken[token] = h
}

// takeHeld removes and returns the connection of token's lease, if any.
func (l *l2) takeHeld(token string) *heldConn {
	l.held.mu.Lock()
	defer l.held.mu.Unlock()
	h := l.held.byToken[token]
	delete(l.held.byToken, token)
	return h
}

// dropHeld gives back the connection of token's lease if neither a fill
// nor a release took it (the loader panicked).
func (l *l2) dropHeld(token string) {
	if h := l.takeHeld(token); h != nil {
		l.unhold(h)
	}
}

// tryLeaseHeld is tryLease on h: the lease, the value, and the WATCH of
// the lease with its confirmation, in one round trip (see above).
func (l *l2) tryLeaseHeld(ctx context.Context, key, token string, h *heldConn) (int64, []byte, error) {
	lk := l.leaseKey(key)
	var lc leaseCmds
	var cur *redis.StringCmd
	watch := func(ctx context.Context, p redis.Pipeliner) {
		p.Do(ctx, "watch", lk)
		cur = p.Get(ctx, lk)
	}
	split := l.opt.hooks.beforeLeaseWatch
	err := l.call(ctx, func(ctx context.Context) error {
		_, err := h.conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			if h.armed { // a lease held by another loader, watched on the last try
				p.Do(ctx, "unwatch")
			}
			lc = leaseCmds{took: p.SetNX(ctx, lk, token, l.opt.LeaseTTL), get: p.Get(ctx, l.valueKey(key))}
			if split == nil {
				watch(ctx, p)
			}
			return nil
		})
		h.armed = true
		if err = ignoreNil(err); err == nil && split != nil { // tests: a write lands before the WATCH
			split(key)
			_, err = h.conn.Pipelined(ctx, func(p redis.Pipeliner) error { watch(ctx, p); return nil })
		}
		return ignoreNil(err)
	})
	if err != nil {
		return 0, nil, err
	}
	h.confirmed = cur.Val() == token
	return l.leaseOutcome(ctx, key, token, lc)
}

// fillHeld is fillIfLeased on the connection that took and watches the
// lease: MULTI, SET, DEL, EXEC, which writes nothing if the lease changed
// since the lease's round trip confirmed it.
func (l *l2) fillHeld(ctx context.Context, h *heldConn, f l2Fill) (bool, error) {
	defer l.unhold(h)
	if hk := l.opt.hooks.fillChecked; hk != nil {
		hk(f.key)
	}
	return h.exec(ctx, func(p redis.Pipeliner) { l.queueFill(ctx, p, f) })
}

// releaseHeld is release on the connection that watches the lease: MULTI,
// DEL, EXEC, a compare-and-delete without a script.
func (l *l2) releaseHeld(ctx context.Context, h *heldConn, key string) {
	defer l.unhold(h)
	_ = l.call(ctx, func(ctx context.Context) error {
		_, err := h.exec(ctx, func(p redis.Pipeliner) { p.Del(ctx, l.leaseKey(key)) })
		return err
	})
}

// exec runs write's commands in MULTI/EXEC on h: whether they ran (false
// and no error when a watched key changed). EXEC clears the WATCH, whether
// it ran the commands or not.
func (h *heldConn) exec(ctx context.Context, write func(p redis.Pipeliner)) (bool, error) {
	_, err := h.conn.TxPipelined(ctx, func(p redis.Pipeliner) error {
		write(p)
		return nil
	})
	switch {
	case err == nil:
		h.armed = false
		return true, nil
	case errors.Is(err, redis.TxFailedErr):
		h.armed = false
		return false, nil
	}
	return false, err // EXEC may not have run: unhold clears the WATCH
}
