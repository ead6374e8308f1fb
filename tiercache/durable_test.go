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

// TestInvalidationWaitsForReplicas: with the replica's replication link
// cut (its user switched off on the master), an invalidation the master took is not done (docs/design.md §3.15):
// it is deferred as not replicated, the delete the replica missed is
// retried, and once the link is back the retry gets the acknowledgement
// and the replica no longer holds the value. With MinReplicasAck set to
// NoReplicasAck the invalidation returns nil and the test fails.
func TestInvalidationWaitsForReplicas(t *testing.T) {
	rep := testenv.RedisReplicated(t)
	rdb := dialRedis(t, &redis.Options{Addr: rep.Master.Addr()})
	replica := dialRedis(t, &redis.Options{Addr: rep.Replica.Addr()})
	ctx := context.Background()
	c := newCache(t, rdb, Options{Namespace: "wait", Standalone: true, ReplicaAckTimeout: 50 * time.Millisecond})
	src := newSource()
	src.set("k", 1)
	if _, err := c.Get(ctx, "k", src.loader("k")); err != nil {
		t.Fatal(err)
	}
	if err := c.Invalidate(ctx, "k"); err != nil {
		t.Fatalf("invalidate with the replica in sync: %v", err)
	}
	if _, err := c.Get(ctx, "k", src.loader("k")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the value on the replica", func() bool {
		return replica.Exists(ctx, "wait:v:{k}").Val() == 1
	})
	testenv.Eventually(t, 5*time.Second, "the cache sees the replica", func() bool { return c.l2.wantReplicas() == 1 })
	rep.CutLink(t)
	err := c.Invalidate(ctx, "k")
	if !errors.Is(err, ErrDeferred) || !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("invalidate with the replica cut off: got %v, want ErrDeferred wrapping ErrNotReplicated", err)
	}
	if n := c.Stats().NotReplicated; n == 0 {
		t.Fatalf("Stats.NotReplicated = 0 after an unacknowledged invalidation")
	}
	if rdb.Exists(ctx, "wait:v:{k}").Val() != 0 || replica.Exists(ctx, "wait:v:{k}").Val() != 1 {
		t.Fatalf("want the delete on the master only while the link is cut")
	}
	rep.RestoreLink(t)
	testenv.Eventually(t, 15*time.Second, "the retry acknowledged", func() bool {
		return c.Stats().RetryQueued == 0
	})
	if replica.Exists(ctx, "wait:v:{k}").Val() != 0 {
		t.Fatalf("the replica still holds the value after the retry was acknowledged")
	}
}

// TestMasterInfo: the probe reads the master's run_id and its connected
// replicas.
func TestMasterInfo(t *testing.T) {
	rep := testenv.RedisReplicated(t)
	rdb := dialRedis(t, &redis.Options{Addr: rep.Master.Addr()})
	c := newCache(t, rdb, Options{Namespace: "mi", Standalone: true})
	raw, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	id, n, err := c.l2.masterInfo()
	if err != nil || len(id) != 40 || !strings.Contains(raw, "run_id:"+id+"\r\n") || n != 1 {
		t.Fatalf("masterInfo = %q, %d, %v; want the run_id of INFO server and 1 replica", id, n, err)
	}
}

// TestClusterWaitPerMaster: in a Cluster the delete of each key and the
// bump of each group go to their slot's master, each followed by its own
// WAIT there. This cluster has no replicas, so asking for one defers the
// invalidation as not replicated, while every master took its deletes.
func TestClusterWaitPerMaster(t *testing.T) {
	addrs := startCluster(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	c := newCache(t, rdb, Options{Namespace: "cw", Standalone: true, MinReplicasAck: 1, ReplicaAckTimeout: 5 * time.Millisecond})
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for _, k := range keys {
		if err := rdb.Set(ctx, "cw:v:{"+k+"}", "old", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	err := c.InvalidateGroup(ctx, "g", keys...)
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("invalidate asking one replica of a cluster without any: got %v, want ErrNotReplicated", err)
	}
	for _, k := range keys {
		if n := rdb.Exists(ctx, "cw:v:{"+k+"}").Val(); n != 0 {
			t.Fatalf("key %s still in L2 after its master took the delete", k)
		}
	}
	if g, _ := rdb.Get(ctx, "cw:g:{g}").Uint64(); g == 0 {
		t.Fatalf("group generation not bumped on its master")
	}
}
