package tiercache

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// channelNode returns the client that takes the invalidation channel's
// publishes and subscriptions. On a Redis Cluster that is the master of the
// channel's slot, whatever ReadOnly says for reads: a replica answers the
// freshness PING on a subscription too, but proves nothing about what its
// master published (a message the cluster bus dropped on the way to it is
// lost without a gap), and an SPUBLISH sent to a replica reaches the
// master's subscribers only over that same bus (docs/design.md §3.13).
// Elsewhere it is the cache's own client.
func (b *bus) channelNode(ctx context.Context) (redis.UniversalClient, error) {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return b.rdb, nil
	}
	return cc.MasterForKey(ctx, b.channel)
}

// sharded reports whether the channel is a sharded (Cluster) channel.
func (b *bus) sharded() bool {
	_, ok := b.rdb.(*redis.ClusterClient)
	return ok
}
