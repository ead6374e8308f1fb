package tiercache

import (
	"context"
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
	src.set("k", 1)
	mustGet(t, b, "k", src)
	if _, info := mustGet(t, b, "k", src); info.Source != SourceL1 {
		t.Fatalf("b: got %v, want an L1 hit", info.Source)
	}
	src.set("k", 2)
	if err := a.Invalidate(ctx, "k"); err != nil {
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
	if n := strings.Count(cl.CLI(raddr, "client", "list"), "ssub=1"); n > 0 {
		t.Fatalf("%d subscriptions on the replica %s, want them on its master", n, raddr)
	}
}
