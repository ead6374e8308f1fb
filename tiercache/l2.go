package tiercache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// l2 is the Redis tier. Every call has a short timeout and goes through a
// circuit breaker, so a dead Redis costs a read microseconds, not a timeout.
//
// Keys: a value lives at "<ns>:v:{<tag>}" and its lease at
// "<ns>:l:{<tag>}", where tag is the key escaped by hashTag; the hash tag
// keeps both in one Cluster slot so the fill script may touch both.
type l2 struct {
	rdb   redis.UniversalClient
	opt   *Options
	stats *stats
	br    breaker
	dur   durability
	held  held
}

func newL2(rdb redis.UniversalClient, opt *Options, st *stats) *l2 {
	l := &l2{rdb: rdb, opt: opt, stats: st}
	l.br = breaker{threshold: int64(opt.BreakerThreshold), cooldown: int64(opt.BreakerCooldown), opens: &st.breakerOpens}
	if n := heldSlots(rdb); opt.ScriptFreeMiss && n > 0 {
		l.held.slots = make(chan struct{}, n)
	}
	return l
}

// call runs a read-path fn under the breaker and Options.L2Timeout.
func (l *l2) call(ctx context.Context, fn func(ctx context.Context) error) error {
	if !l.br.allow() {
		l.stats.l2Errors.Add(1)
		return errBreakerOpen
	}
	ctx, cancel := context.WithTimeout(ctx, l.opt.L2Timeout)
	defer cancel()
	return l.record(fn(ctx))
}

// callWrite runs an invalidation's fn under Options.WriteTimeout and
// regardless of the breaker: a write has already paid for a commit, every
// other replica depends on its delete and publish, and the breaker only
// protects reads from waiting on a dead Redis. Its outcome still feeds the
// breaker, so a write that gets through closes it.
func (l *l2) callWrite(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.opt.WriteTimeout)
	defer cancel()
	return l.record(fn(ctx))
}

// record counts a call's outcome in the breaker and the stats. redis.Nil is
// an answer, not a failure.
func (l *l2) record(err error) error {
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	l.br.record(err)
	if err != nil {
		l.stats.l2Errors.Add(1)
	}
	return err
}

// get reads key's raw value: nil and no error on a miss. It is the L2-hit
// path, written out without closures so that a hit allocates little. ctx
// carries no deadline or cancellation (see Cache.fillContext).
func (l *l2) get(ctx context.Context, key string) ([]byte, error) {
	if !l.br.allow() {
		l.stats.l2Errors.Add(1)
		return nil, errBreakerOpen
	}
	ctx, cancel := context.WithTimeout(ctx, l.opt.L2Timeout)
	b, err := l.rdb.Get(ctx, l.valueKey(key)).Bytes()
	cancel()
	if err = l.record(err); err != nil || b == nil {
		return nil, err
	}
	return b, nil
}

// The miss path takes a lease and fills L2 under it (docs/design.md §3.4)
// by Lua scripts, or, with Options.ScriptFreeMiss, without Lua: a single
// key's lease then watches itself on a connection held until the fill
// (held.go), two round trips as with the scripts. A batch's leases, or a
// lease that found no connection to hold, are a pipelined SET NX PX and
// GET, one round trip; their fill a compare-and-set made of WATCH and
// MGET, then MULTI/EXEC, Redis's optimistic transaction: the value is
// written only if the lease still holds our token, and a writer's DEL of
// the lease between our MGET and EXEC (or the lease's expiry, or another
// replica's SET) makes EXEC write nothing (the README's miss-path
// figures).

// getOrLeaseScript returns {1, value} on a hit, {2} when it took the lease
// for the caller, {3} when another loader holds it.
var getOrLeaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
`)

// fillScript stores the value only while the caller's lease still stands;
// a writer's delete removes the lease, so a load that raced a write cannot
// leave the old value behind (docs/design.md §3.4). With a third key it
// also writes the value's fail-safe copy there, for ARGV[4] ms
// (Options.FailSafeL2TTL, docs/design.md §3.16).
var fillScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  if KEYS[3] then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4]) end
  return 1
end
return 0
`)

// releaseScript deletes a lease only if it still holds the caller's token.
// It stays a script because it is a compare-and-delete, and a WATCH
// transaction would cost three round trips on a path that runs only after
// a failed load or a lease taken in vain.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// lease runs after a miss in L2: it takes the key's lease, or, if another
// loader holds it, re-reads L2 until the value appears, the lease frees up
// (and is taken), or LeaseWait passes. It returns the raw value if found,
// else the lease token held (empty if none: the caller loads without
// filling L2). waited reports a wait on another loader. With hold, a
// script-free lease keeps its connection for the fill or release that
// ends it (held.go); its caller must end it, or call dropHeld.
func (l *l2) lease(ctx context.Context, key string, hold bool) (raw []byte, found bool, lease string, waited bool) {
	l.stats.l2Misses.Add(1)
	ctx, cancel := context.WithTimeout(ctx, l.opt.LeaseWait+l.opt.L2Timeout)
	defer cancel()
	token := randomToken()
	var h *heldConn
	if hold {
		h = l.holdConn(ctx, key)
	}
	defer func() {
		if h != nil {
			l.unhold(h)
		}
	}()
	deadline := time.Now().Add(l.opt.LeaseWait)
	for {
		state, v, err := l.tryLease(ctx, key, token, h)
		switch {
		case err != nil:
			return nil, false, "", waited
		case state == 1:
			return v, true, "", waited
		case state == 2:
			l.stats.leasesTaken.Add(1)
			if h != nil && h.confirmed {
				l.keepHeld(token, h)
				h = nil
			}
			return nil, false, token, waited
		}
		if !waited {
			waited = true
			l.stats.leaseWaits.Add(1)
		}
		if time.Now().After(deadline) {
			l.stats.leaseTimeouts.Add(1)
			return nil, false, "", waited
		}
		t := time.NewTimer(l.opt.LeasePoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, false, "", waited
		}
	}
}

// tryLease reads key's value and takes its lease for token unless another
// loader holds it: state 1 found (with the value), 2 leased to us, 3 held.
// With h, it runs on that connection and watches the lease.
func (l *l2) tryLease(ctx context.Context, key, token string, h *heldConn) (int64, []byte, error) {
	if h != nil {
		return l.tryLeaseHeld(ctx, key, token, h)
	}
	var lc leaseCmds
	err := l.call(ctx, func(ctx context.Context) error {
		if !l.opt.ScriptFreeMiss { // EVALSHA, as the scripted path ran it
			lc.script = getOrLeaseScript.Run(ctx, l.rdb, []string{l.valueKey(key), l.leaseKey(key)}, token, l.opt.LeaseTTL.Milliseconds())
			return ignoreNil(lc.script.Err())
		}
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			lc = l.queueLease(ctx, p, key, token)
			return nil
		})
		return ignoreNil(err)
	})
	if err != nil {
		return 0, nil, err
	}
	return l.leaseOutcome(ctx, key, token, lc)
}

// leaseCmds are the queued commands of one key's lease: the script's
// answer, or the SET NX and the GET that replace it.
type leaseCmds struct {
	script *redis.Cmd
	took   *redis.BoolCmd
	get    *redis.StringCmd
}

// queueLease queues key's lease for token on p: SET NX PX, then GET, so
// that a value filled before the GET is seen whether or not the SET took
// the lease.
func (l *l2) queueLease(ctx context.Context, p redis.Pipeliner, key, token string) leaseCmds {
	vk, lk := l.valueKey(key), l.leaseKey(key)
	if !l.opt.ScriptFreeMiss {
		return leaseCmds{script: getOrLeaseScript.Eval(ctx, p, []string{vk, lk}, token, l.opt.LeaseTTL.Milliseconds())}
	}
	return leaseCmds{took: p.SetNX(ctx, lk, token, l.opt.LeaseTTL), get: p.Get(ctx, vk)}
}

// leaseOutcome reads a lease's answers. A lease taken beside a value that
// is already there (another replica filled it since our miss) is released
// at once, so the next miss after the value expires need not wait for it.
func (l *l2) leaseOutcome(ctx context.Context, key, token string, lc leaseCmds) (int64, []byte, error) {
	if lc.script != nil {
		res, err := lc.script.Slice()
		if err != nil {
			return 0, nil, err
		}
		state, v := leaseState(res)
		return state, v, nil
	}
	if err := ignoreNil(lc.took.Err()); err != nil {
		return 0, nil, err
	}
	b, err := lc.get.Bytes()
	switch {
	case err == nil:
		if lc.took.Val() {
			l.release(ctx, key, token)
		}
		return 1, b, nil
	case !errors.Is(err, redis.Nil):
		return 0, nil, err
	case lc.took.Val():
		return 2, nil, nil
	}
	return 3, nil, nil
}

// ignoreNil treats redis.Nil, a miss, as no error.
func ignoreNil(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// leaseState reads getOrLeaseScript's answer: the state and, on a hit, the
// value.
func leaseState(res []any) (int64, []byte) {
	if len(res) == 0 {
		return 0, nil
	}
	state, _ := res[0].(int64)
	if state == 1 && len(res) > 1 {
		s, _ := res[1].(string)
		return 1, []byte(s)
	}
	return state, nil
}

// fill writes f's value (and, if f.keep, its fail-safe copy) if f's lease
// still holds; it reports whether it did.
func (l *l2) fill(ctx context.Context, f l2Fill) bool {
	var stored bool
	err := l.call(ctx, func(ctx context.Context) (err error) {
		stored, err = l.fillIfLeased(ctx, f)
		return err
	})
	if err != nil {
		// The lease may still stand; free it so that other replicas'
		// waiters need not sit out LeaseWait. Best effort: Redis may be
		// the reason the fill failed.
		l.release(ctx, f.key, f.lease)
		return false
	}
	if !stored {
		l.stats.fencedL2Fills.Add(1)
		return false
	}
	l.stats.l2Fills.Add(1)
	return true
}

// fillIfLeased is the compare-and-set of a fill: SET the value (and its
// fail-safe copy) and DEL the lease only while the lease holds our token
// (docs/design.md §3.4), in the one script or transaction.
func (l *l2) fillIfLeased(ctx context.Context, f l2Fill) (bool, error) {
	vk, lk := l.valueKey(f.key), l.leaseKey(f.key)
	if h := l.takeHeld(f.lease); h != nil {
		return l.fillHeld(ctx, h, f)
	}
	var cl *redis.Client
	if l.opt.ScriptFreeMiss {
		var err error
		if cl, err = l.watchClient(ctx, lk); err != nil {
			return false, err
		}
	}
	if cl == nil {
		keys, args := []string{vk, lk}, []any{f.lease, f.raw, f.ttl.Milliseconds()}
		if f.keep {
			keys, args = append(keys, l.copyKey(f.key)), append(args, l.opt.FailSafeL2TTL.Milliseconds())
		}
		n, err := fillScript.Run(ctx, l.rdb, keys, args...).Int64()
		return n == 1, err
	}
	ours := func(cur []any) bool {
		s, ok := cur[0].(string)
		ok = ok && s == f.lease
		if h := l.opt.hooks.fillChecked; ok && h != nil {
			h(f.key)
		}
		return ok
	}
	stored, _, err := casWrite(ctx, cl, []string{lk}, ours, func(p redis.Pipeliner) { l.queueFill(ctx, p, f) })
	return stored, err
}

// queueFill queues f's writes in a transaction whose WATCH found f's lease
// still ours: the value, the lease's delete and, if f.keep, the copy.
func (l *l2) queueFill(ctx context.Context, p redis.Pipeliner, f l2Fill) {
	p.Set(ctx, l.valueKey(f.key), f.raw, f.ttl)
	p.Del(ctx, l.leaseKey(f.key))
	if f.keep {
		p.Set(ctx, l.copyKey(f.key), f.raw, l.opt.FailSafeL2TTL)
	}
}

// watchClient is the client of the node that holds key, on which a WATCH
// transaction runs (in a Cluster, the slot's master); nil for a client of
// another kind, which fills by script.
func (l *l2) watchClient(ctx context.Context, key string) (*redis.Client, error) {
	switch c := l.rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	}
	return nil, nil
}

// casWrite is a compare-and-set without Lua, in two round trips: WATCH
// keys and MGET them, then, if ours accepts what they hold, write's
// commands in MULTI/EXEC, which Redis runs only if no watched key changed
// after the WATCH (a DEL, a SET, an expiry). It reports whether the write
// ran, and changed when ours accepted but a key changed before EXEC.
func casWrite(ctx context.Context, cl *redis.Client, keys []string, ours func(cur []any) bool, write func(p redis.Pipeliner)) (wrote, changed bool, err error) {
	args := make([]any, 0, len(keys)+1)
	args = append(args, "watch")
	for _, k := range keys {
		args = append(args, k)
	}
	err = cl.Watch(ctx, func(tx *redis.Tx) error {
		var cur *redis.SliceCmd
		_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, args...)
			cur = p.MGet(ctx, keys...)
			return nil
		})
		if err != nil || !ours(cur.Val()) {
			// The WATCH went in a pipeline, which go-redis does not
			// track: release it here, not on the pooled connection.
			_ = tx.Unwatch(ctx).Err()
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			write(p)
			return nil
		})
		switch {
		case err == nil:
			wrote = true
		case errors.Is(err, redis.TxFailedErr):
			changed, err = true, nil
		default:
			_ = tx.Unwatch(ctx).Err() // EXEC may not have run
		}
		return err
	})
	return wrote, changed, err
}

// release gives up a lease after a failed load so waiters need not time out.
func (l *l2) release(ctx context.Context, key, lease string) {
	if h := l.takeHeld(lease); h != nil {
		l.releaseHeld(ctx, h, key)
		return
	}
	_ = l.call(ctx, func(ctx context.Context) error {
		return releaseScript.Run(ctx, l.rdb, []string{l.leaseKey(key)}, lease).Err()
	})
}

// del removes a value (and its lease) best effort.
func (l *l2) del(ctx context.Context, key string) {
	_ = l.call(ctx, func(ctx context.Context) error {
		return l.rdb.Del(ctx, l.valueKey(key), l.leaseKey(key)).Err()
	})
}

// bumpGroupScript raises a group's generation to at least ARGV[1] (the
// writer's own generation plus one) and at least one past its stored
// value. A missing counter (never made, or lost by Redis) starts from
// ARGV[2], a fresh random seed, so it does not hand out a generation that
// was used before it was lost (docs/design.md §3.10).
var bumpGroupScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local n
if cur then
  n = math.max(tonumber(cur) + 1, tonumber(ARGV[1]))
else
  n = math.max(tonumber(ARGV[2]), tonumber(ARGV[1]))
end
redis.call('SET', KEYS[1], string.format('%d', n))
return n
`)

// seedGroupScript returns a group's generation, first creating a missing
// counter from ARGV[1], a fresh random seed.
var seedGroupScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// invalidate deletes keys (values and leases) and bumps groups in one
// pipelined round trip, followed on the same connection by WAIT where
// replicas must acknowledge it (docs/design.md §3.15). It returns the
// groups' new generations; with them, ErrNotReplicated when the master took
// it but too few replicas acknowledged.
func (l *l2) invalidate(ctx context.Context, keys []string, groups map[string]uint64) (map[string]uint64, error) {
	want := l.wantReplicas()
	if cc, ok := l.rdb.(*redis.ClusterClient); ok && want > 0 {
		return l.invalidateCluster(ctx, cc, keys, groups, want)
	}
	return l.invalidateOn(ctx, l.rdb, keys, groups, want)
}

// invalidateOn is invalidate on one client: a node, or a client that
// routes each command itself when no WAIT is needed.
func (l *l2) invalidateOn(ctx context.Context, rdb redis.Cmdable, keys []string, groups map[string]uint64, want int) (map[string]uint64, error) {
	var cmds []*redis.Cmd
	var wait *redis.Cmd
	names := make([]string, 0, len(groups))
	err := l.callWrite(ctx, func(ctx context.Context) error {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, l.valueKey(k), l.leaseKey(k))
			}
			for g, min := range groups {
				names = append(names, g)
				cmds = append(cmds, bumpGroupScript.Eval(ctx, p, []string{l.groupKey(g)}, strconv.FormatUint(min, 10), l.seed()))
			}
			if want > 0 {
				wait = p.Do(ctx, "wait", want, l.opt.ReplicaAckTimeout.Milliseconds())
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(names))
	for i, g := range names {
		n, _ := cmds[i].Int64()
		out[g] = uint64(n)
	}
	if wait != nil {
		if acked, _ := wait.Int64(); acked < int64(want) {
			l.stats.notReplicated.Add(1)
			return out, fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, acked, want, l.opt.ReplicaAckTimeout)
		}
	}
	return out, nil
}

// groupGens reads the stored generations of groups. A missing counter is
// created from a fresh seed, in a second round trip: a generation read
// from Redis is never one that a lost counter handed out before.
func (l *l2) groupGens(ctx context.Context, groups []string) (map[string]uint64, error) {
	out, err := l.storedGens(ctx, groups)
	if err != nil {
		return nil, err
	}
	for g, n := range out {
		if n != 0 {
			continue
		}
		err := l.call(ctx, func(ctx context.Context) error {
			n, err := seedGroupScript.Run(ctx, l.rdb, []string{l.groupKey(g)}, l.seed()).Uint64()
			out[g] = n
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// storedGens reads the stored generations of groups (0 where none).
func (l *l2) storedGens(ctx context.Context, groups []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(groups))
	if len(groups) == 0 {
		return out, nil
	}
	err := l.call(ctx, func(ctx context.Context) error {
		cmds := make([]*redis.StringCmd, len(groups))
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, g := range groups {
				cmds[i] = p.Get(ctx, l.groupKey(g))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, g := range groups {
			n, _ := cmds[i].Uint64()
			out[g] = n
		}
		return nil
	})
	return out, err
}

// purge deletes every value and lease of the namespace, on every master of
// a Cluster. It is the recovery from a retry queue overflow, when which
// keys are stale is no longer known: a SCAN, slow on a big Redis but rare.
func (l *l2) purge(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ns := globEscape(l.opt.Namespace)
	one := func(ctx context.Context, c redis.UniversalClient) error {
		for _, pattern := range []string{ns + ":v:*", ns + ":l:*"} {
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			var batch []string
			for iter.Next(ctx) {
				batch = append(batch, iter.Val())
				if len(batch) == 500 {
					if err := delEach(ctx, c, batch); err != nil {
						return err
					}
					batch = batch[:0]
				}
			}
			if err := iter.Err(); err != nil {
				return err
			}
			if err := delEach(ctx, c, batch); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := l.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return one(ctx, c) })
	}
	return one(ctx, l.rdb)
}

// delEach deletes keys one command each, pipelined: in a Cluster they may
// sit in different slots.
func delEach(ctx context.Context, c redis.UniversalClient, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		return nil
	})
	return err
}

// globEscape escapes the SCAN MATCH metacharacters in s.
func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// refreshLeaseScript takes a key's lease for an eager refresh only while
// the value is still in its last ARGV[3] milliseconds: a value another
// replica has just refreshed, one with no TTL, or none at all (the miss
// path's business) is left alone. It is a script because the check and the
// SET NX must be one step, or two replicas could refresh one after the
// other; it runs once per refresh, not per read.
var refreshLeaseScript = redis.NewScript(`
local t = redis.call('PTTL', KEYS[1])
if t < 0 or t > tonumber(ARGV[3]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
`)

// refreshLease takes key's lease for an eager refresh if the value's
// remaining TTL is within window; it returns the token, or "" if not.
func (l *l2) refreshLease(ctx context.Context, key string, window time.Duration) string {
	token := randomToken()
	var n int64
	err := l.call(ctx, func(ctx context.Context) (err error) {
		n, err = refreshLeaseScript.Run(ctx, l.rdb, []string{l.valueKey(key), l.leaseKey(key)}, token, l.opt.LeaseTTL.Milliseconds(), window.Milliseconds()).Int64()
		return err
	})
	if err != nil || n == 0 {
		return ""
	}
	l.stats.leasesTaken.Add(1)
	return token
}
