package tiercache

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// getMany reads the raw values of keys in one round trip: one MGET on a
// single node or Sentinel; in a Cluster, where the keys' hash tags scatter
// them over slots, one GET per key pipelined, which go-redis sends as one
// pipeline per shard, all at once (docs/design.md §3.17). A miss is nil.
func (l *l2) getMany(keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	vks := make([]string, len(keys))
	for i, k := range keys {
		vks[i] = l.valueKey(k)
	}
	err := l.call(context.Background(), func(ctx context.Context) error {
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

// leaseMany runs getOrLeaseScript for every key in one pipelined round
// trip, all under one token: per key the state (1 found, 2 leased to us, 3
// held by another loader) and, where found, the raw value.
func (l *l2) leaseMany(keys []string, token string) ([]int64, [][]byte, error) {
	states := make([]int64, len(keys))
	vals := make([][]byte, len(keys))
	err := l.call(context.Background(), func(ctx context.Context) error {
		cmds := make([]*redis.Cmd, len(keys))
		_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = getOrLeaseScript.Eval(ctx, p, []string{l.valueKey(k), l.leaseKey(k)}, token, l.opt.LeaseTTL.Milliseconds())
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, c := range cmds {
			res, _ := c.Slice()
			states[i], vals[i] = leaseState(res)
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
