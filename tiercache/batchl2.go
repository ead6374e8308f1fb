package tiercache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// getMany reads the raw values of keys in one round trip: one MGET on a
// single node or Sentinel; in a Cluster, where the keys' hash tags scatter
// them over slots, one GET per key pipelined, which go-redis sends as one
// pipeline per shard, all at once (docs/design.md §3.17). A miss is nil.
func (l *l2) getMany(ctx context.Context, keys []string) ([][]byte, error) {
	return l.mget(ctx, keys, l.valueKey)
}

// copies is getMany for the keys' fail-safe copies (docs/design.md §3.16).
func (l *l2) copies(ctx context.Context, keys []string) ([][]byte, error) {
	return l.mget(ctx, keys, l.copyKey)
}

// mget reads the Redis keys name(k) of keys as getMany says. ctx carries
// no deadline or cancellation (see Cache.fillContext).
func (l *l2) mget(ctx context.Context, keys []string, name func(string) string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	vks := make([]string, len(keys))
	for i, k := range keys {
		vks[i] = name(k)
	}
	err := l.call(ctx, func(ctx context.Context) error {
		if _, ok := l.rdb.(*redis.ClusterClient); ok {
			return l.getEach(ctx, vks, out)
		}
		vals, err := l.rdb.MGet(ctx, vks...).Result()
		for i, v := range vals {
			if s, ok := v.(string); ok {
				out[i] = []byte(s)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// getEach is getMany in a Cluster.
func (l *l2) getEach(ctx context.Context, vks []string, out [][]byte) error {
	cmds := make([]*redis.StringCmd, len(vks))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range vks {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, c := range cmds {
		if b, err := c.Bytes(); err == nil {
			out[i] = b
		}
	}
	return nil
}

// leaseMany takes the lease of every key in one pipelined round trip, all
// under one token, as [l2.tryLease] does for one: per key the state (1
// found, 2 leased to us, 3 held by another loader) and, where found, the
// raw value.
func (l *l2) leaseMany(ctx context.Context, keys []string, token string) ([]int64, [][]byte, error) {
	states := make([]int64, len(keys))
	vals := make([][]byte, len(keys))
	err := l.call(ctx, func(ctx context.Context) error {
		cmds := make([]leaseCmds, len(keys))
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = l.queueLease(ctx, p, k, token)
			}
			return nil
		})
		if err = ignoreNil(err); err != nil {
			return err
		}
		for i, lc := range cmds {
			states[i], vals[i], _ = l.leaseOutcome(ctx, keys[i], token, lc)
			if states[i] != 3 { // a held key is counted by the lease it waits in
				l.stats.l2Misses.Add(1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return states, vals, nil
}

// l2Fill is one key's fill: its encoded value, TTL and lease; keep: also
// write the value's fail-safe copy (Options.FailSafeL2TTL).
type l2Fill struct {
	key, lease string
	raw        []byte
	ttl        time.Duration
	keep       bool
}

// fillMany writes each fill whose lease still holds, as [l2.fill] does for
// one, and reports which it stored. On one node it is one transaction for
// all: WATCH every lease, read them in one round trip, then SET and DEL
// those still ours in one MULTI/EXEC. If a lease changed meanwhile (a
// write to one of the keys), EXEC writes nothing and each fill is retried
// alone. In a Cluster, whose keys sit in many slots, and with the scripts,
// each key is filled alone.
func (l *l2) fillMany(ctx context.Context, fills []l2Fill) []bool {
	out := make([]bool, len(fills))
	node, ok := l.rdb.(*redis.Client)
	if len(fills) > 1 && ok && l.opt.ScriptFreeMiss {
		ours, changed, err := l.fillTogether(ctx, node, fills)
		if err == nil && !changed {
			for j := range fills {
				out[j] = ours[j]
				if ours[j] {
					l.stats.l2Fills.Add(1)
				} else {
					l.stats.fencedL2Fills.Add(1)
				}
			}
			return out
		}
	}
	for j, f := range fills {
		out[j] = l.fill(ctx, f)
	}
	return out
}

// fillTogether is fillMany's transaction: which fills it stored; none if
// a watched lease changed before EXEC (changed) or on an error.
func (l *l2) fillTogether(ctx context.Context, node *redis.Client, fills []l2Fill) (ours []bool, changed bool, err error) {
	lks := make([]string, len(fills))
	for j, f := range fills {
		lks[j] = l.leaseKey(f.key)
	}
	ours = make([]bool, len(fills))
	check := func(cur []any) bool {
		any := false
		for j, f := range fills {
			s, ok := cur[j].(string)
			ours[j] = ok && s == f.lease
			any = any || ours[j]
		}
		return any
	}
	err = l.call(ctx, func(ctx context.Context) error {
		var wrote bool
		wrote, changed, err = casWrite(ctx, node, lks, check, func(p redis.Pipeliner) {
			for j, f := range fills {
				if ours[j] {
					l.queueFill(ctx, p, f)
				}
			}
		})
		if !wrote {
			clear(ours)
		}
		return err
	})
	return ours, changed, err
}
