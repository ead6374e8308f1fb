package tiercache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// clusterPublishShard is CLUSTERMSG_TYPE_PUBLISHSHARD, the cluster bus
// message that carries an SPUBLISH from a master to its replicas.
const clusterPublishShard = "10"

// TestClusterSubscribesOnMasterWithReadOnly: with read_only=true the
// cluster client sends reads to replicas, yet the invalidation subscription
// must sit on the channel's master, which takes the SPUBLISH: a replica
// whose cluster bus drops the published messages still answers the
// freshness PING, so a subscription there would look fresh while it misses
// every invalidation (docs/design.md §3.13).
func TestClusterSubscribesOnMasterWithReadOnly(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisClusterWithReplicas(t)
	newClient := func(readOnly bool) *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs, ReadOnly: readOnly, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const bound = 100 * time.Millisecond
	src := newSource()
	opt := Options{Namespace: "ro", StalenessBound: bound, L1TTL: time.Hour, L2TTL: time.Hour}
	// The writer publishes on the master; the reader reads from replicas.
	a := newCache(t, newClient(false), opt)
	b := newCache(t, newClient(true), opt)
	waitReady(t, a, b)
	ctx := context.Background()
	rdb := newClient(false)
	master, err := rdb.MasterForKey(ctx, b.bus.channel)
	if err != nil {
		t.Fatal(err)
	}
	raddr := cl.ReplicaOf(master.Options().Addr)
	if out := cl.CLI(raddr, "debug", "drop-cluster-packet-filter", clusterPublishShard); !strings.Contains(out, "OK") {
		t.Fatalf("DEBUG DROP-CLUSTER-PACKET-FILTER on %s: %s", raddr, out)
	}
	defer cl.CLI(raddr, "debug", "drop-cluster-packet-filter", "-1")
	checkInvalidationReaches(t, a, b, src, bound)
	if n := strings.Count(cl.CLI(raddr, "client", "list"), "ssub=1"); n > 0 {
		t.Fatalf("%d subscriptions on the replica %s, want them on its master", n, raddr)
	}
}

// checkInvalidationReaches warms key k on reader b, has writer a invalidate
// it, and fails if b serves the old value in a read that began more than
// bound after the acknowledgement.
func checkInvalidationReaches(t *testing.T, a, b *Cache[int], src *source, bound time.Duration) {
	t.Helper()
	src.set("k", 1)
	mustGet(t, b, "k", src)
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("b: got %v, want an L1 hit", info.Source)
	}
	src.set("k", 2)
	// Deferred is an answer: the broadcast went out, only WAIT found too
	// few replicas (a demoted master still resyncing with the new one).
	if err := a.Invalidate(context.Background(), "k"); err != nil && !errors.Is(err, ErrDeferred) {
		t.Fatal(err)
	}
	acked := time.Now()
	stale := 0
	for time.Since(acked) < bound+time.Second {
		start := time.Now()
		if v, _ := mustGet(t, b, "k", src); v == 1 && start.Sub(acked) > bound {
			stale++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if stale > 0 {
		t.Fatalf("%d reads of the old value began more than %v after the acknowledgement", stale, bound)
	}
}

// TestClusterSubscriptionFollowsFailover: after a Cluster failover of the
// channel's shard the publishes go to the promoted replica, while the
// demoted master still answers the freshness PING of a subscription left on
// it. The topology watch must move every subscription to the new master
// within a bound (TopologyInterval plus a resubscription), and an
// invalidation published after the failover must reach the reader. The
// demoted node drops the cluster bus messages that carry SPUBLISH, so a
// subscription left there would miss it (docs/design.md §3.13).
func TestClusterSubscriptionFollowsFailover(t *testing.T) {
	t.Parallel()
	for _, how := range [][]string{{"cluster", "failover"}, {"cluster", "failover", "takeover"}} {
		t.Run(strings.Join(how, "_"), func(t *testing.T) { followFailover(t, how) })
	}
}

func followFailover(t *testing.T, failover []string) {
	cl := testenv.RedisClusterWithReplicas(t)
	newClient := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const bound, follow = 100 * time.Millisecond, 2 * time.Second
	src := newSource()
	opt := Options{Namespace: "fo", StalenessBound: bound, L1TTL: time.Hour, L2TTL: time.Hour}
	a := newCache(t, newClient(), opt)
	b := newCache(t, newClient(), opt)
	waitReady(t, a, b)
	master, err := newClient().MasterForKey(context.Background(), b.bus.channel)
	if err != nil {
		t.Fatal(err)
	}
	old := master.Options().Addr
	promoted := cl.ReplicaOf(old)
	if out := cl.CLI(old, "debug", "drop-cluster-packet-filter", clusterPublishShard); !strings.Contains(out, "OK") {
		t.Fatalf("DEBUG DROP-CLUSTER-PACKET-FILTER on %s: %s", old, out)
	}
	defer cl.CLI(old, "debug", "drop-cluster-packet-filter", "-1")
	if out := cl.CLI(promoted, failover...); !strings.Contains(out, "OK") {
		t.Fatalf("%v on %s: %s", failover, promoted, out)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "the replica promoted", func() bool {
		return strings.HasPrefix(cl.CLI(promoted, "role"), "master")
	})
	promotedAt := time.Since(start)
	eventually(t, follow, "both subscriptions on the new master", func() bool {
		return a.Ready() && b.Ready() && strings.Count(cl.CLI(promoted, "client", "list"), "ssub=1") == 2
	})
	t.Logf("%v: promoted after %v, subscriptions on the new master after %v; TopologyResubscribes a=%d b=%d, SubscriptionBreaks b=%d",
		failover, promotedAt, time.Since(start), a.Stats().TopologyResubscribes, b.Stats().TopologyResubscribes, b.Stats().SubscriptionBreaks)
	if n := strings.Count(cl.CLI(old, "client", "list"), "ssub=1"); n > 0 {
		t.Fatalf("%d subscriptions left on the demoted node %s", n, old)
	}
	checkInvalidationReaches(t, a, b, src, bound)
}
