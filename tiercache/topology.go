package tiercache

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// errTopologyChanged ends a sharded subscription whose node no longer
// serves the channel's slot as master (docs/design.md §3.13).
var errTopologyChanged = errors.New("tiercache: the channel's slot moved to another master")

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

// publishPayload sends payload on the channel, through channelNode, in one
// pipeline behind this incarnation's registration when one is due
// (incarnations.go). On a Cluster whose client's slot map is older than a
// failover or a migration, that node answers with a redirect; the map is
// then reloaded and the cluster client, which follows redirects, sends it.
func (b *bus) publishPayload(ctx context.Context, payload []byte) error {
	node, err := b.channelNode(ctx)
	if err != nil {
		return err
	}
	cc, sharded := b.rdb.(*redis.ClusterClient)
	if sharded {
		err = b.pipelinePublish(ctx, node, payload)
		if isRedirect(err) {
			cc.ReloadState(ctx)
			err = b.pipelinePublish(ctx, cc, payload)
		}
		return err
	}
	return b.pipelinePublish(ctx, node, payload)
}

// pipelinePublish sends the registration when due and the publish in one
// round trip through c.
func (b *bus) pipelinePublish(ctx context.Context, c redis.UniversalClient, payload []byte) error {
	var registered func()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		registered = b.register(ctx, p)
		if b.sharded() {
			p.SPublish(ctx, b.channel, payload)
		} else {
			p.Publish(ctx, b.channel, payload)
		}
		return nil
	})
	if err == nil {
		registered()
	}
	return err
}

// sharded reports whether the channel is a sharded (Cluster) channel.
func (b *bus) sharded() bool {
	_, ok := b.rdb.(*redis.ClusterClient)
	return ok
}

// slotNode is the node a sharded subscription is on, with what the
// topology watch asks it.
type slotNode struct {
	client *redis.Client
	slot   int64
	id     string // the node's CLUSTER MYID
}

// subscribeNode returns the node to subscribe on. On a Cluster it is the
// master the client's slot map names, checked against that node's own view:
// the client's map can be seconds old after a failover, and a demoted master
// accepts SSUBSCRIBE as a replica. A node that does not own the slot asks
// the client to reload its map and is refused, so the subscriber retries.
func (b *bus) subscribeNode(ctx context.Context) (redis.UniversalClient, *slotNode, error) {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return b.rdb, nil, nil
	}
	client, err := cc.MasterForKey(ctx, b.channel)
	if err != nil {
		return nil, nil, err
	}
	n := &slotNode{client: client}
	if n.slot, err = client.ClusterKeySlot(ctx, b.channel).Result(); err != nil {
		return nil, nil, err
	}
	if n.id, err = client.ClusterMyID(ctx).Result(); err != nil {
		return nil, nil, err
	}
	if owns, err := n.owns(ctx); err != nil || !owns {
		cc.ReloadState(ctx)
		return nil, nil, errors.Join(errTopologyChanged, err)
	}
	return client, n, nil
}

// owns reports whether the node, by its own CLUSTER SLOTS, is the master
// of the channel's slot.
func (n *slotNode) owns(ctx context.Context) (bool, error) {
	slots, err := n.client.ClusterSlots(ctx).Result()
	if err != nil {
		return false, err
	}
	for _, s := range slots {
		if int64(s.Start) <= n.slot && n.slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].ID == n.id, nil
		}
	}
	return false, nil
}

// watchTopology checks every TopologyInterval that the subscription's node
// still is the master of the channel's slot, by the node's own CLUSTER SLOTS
// and by the client's slot map (reloaded each time, so that a demoted master
// cut off from the cluster bus, which still thinks it owns the slot, is
// found out too). After a Cluster failover or a slot migration it is not:
// publishes go to the new master, while the old one keeps answering the
// freshness PING. The subscription is then treated as broken (closed, so
// the session ends: L1 flushed and bypassed, and the subscriber resubscribes
// on the new master). An error is no answer: a node that stops answering is
// the PingTimeout's business.
func (b *bus) watchTopology(ctx context.Context, n *slotNode, ps *redis.PubSub, moved func()) {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if n == nil || !ok {
		return
	}
	t := time.NewTicker(b.opt.TopologyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !b.stillMaster(ctx, cc, n) && ctx.Err() == nil {
			moved()
			cc.ReloadState(ctx)
			_ = ps.Close()
			return
		}
	}
}

// stillMaster reports whether neither the client's slot map nor node n
// says that another node is the master of the channel's slot.
func (b *bus) stillMaster(ctx context.Context, cc *redis.ClusterClient, n *slotNode) bool {
	cc.ReloadState(ctx) // lazy: the next tick sees what it finds
	if m, err := cc.MasterForKey(ctx, b.channel); err == nil && m.Options().Addr != n.client.Options().Addr {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, b.opt.L2Timeout*5)
	defer cancel()
	owns, err := n.owns(qctx)
	return err != nil || owns
}

// isRedirect reports whether err is a Cluster answer that the command's
// node no longer serves the slot (MOVED, or READONLY from a demoted master).
func isRedirect(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "MOVED ") || strings.HasPrefix(s, "READONLY ")
}
