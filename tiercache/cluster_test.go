package tiercache

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startCluster starts a three-master Redis Cluster of the test's own and
// returns its node addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Redis Cluster; skipped with -short")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli is not installed (apt-get install redis-tools): %v", err)
	}
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		p := strconv.Itoa(port)
		cmd := exec.Command("redis-server", "--port", p, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", dir+"/nodes-"+p+".conf", "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", "")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		addr := "127.0.0.1:" + p
		eventually(t, 5*time.Second, "cluster node "+addr, func() bool {
			c, err := net.DialTimeout("tcp", addr, 50*time.Millisecond)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		})
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "cluster state ok", func() bool {
		for _, a := range addrs {
			out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strings.Split(a, ":")[1], "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return addrs
}

// clusterClient returns a client of the cluster at addrs, closed when the
// test ends.
func clusterClient(t *testing.T, addrs []string) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisCluster runs two replicas on a Cluster client: values and leases
// share a slot, invalidations travel over sharded pub/sub, and groups work.
// a fills without Lua (a WATCH transaction on each key's master), b with
// the scripts.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	newClient := func() *redis.ClusterClient { return clusterClient(t, addrs) }
	src := newSource()
	a := newCache(t, newClient(), Options{Namespace: "cl", L2Timeout: time.Second, ScriptFreeMiss: true})
	b := newCache(t, newClient(), Options{Namespace: "cl", L2Timeout: time.Second})
	waitReady(t, a, b)
	ctx := context.Background()
	for i := range 20 { // keys spread over all three masters
		k := "k" + strconv.Itoa(i)
		src.set(k, 1)
		if v, info := mustGet(t, a, k, src); v != 1 || !info.L2Stored {
			t.Fatalf("%s: got %d %+v, want 1 stored in L2", k, v, info)
		}
		if _, info := mustGet(t, b, k, src); info.Source != SourceL2 {
			t.Fatalf("%s on b: got %v, want L2", k, info.Source)
		}
	}
	src.set("k7", 2)
	if err := a.InvalidateGroup(ctx, "list", "k7"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "b sees the write over sharded pub/sub", func() bool {
		v, _ := mustGet(t, b, "k7", src)
		return v == 2
	})
	if s := b.Stats(); s.Applied != 1 {
		t.Fatalf("b applied %d messages, want 1", s.Applied)
	}
	if s := a.Stats(); s.PublishFailures != 0 || s.RetryQueued != 0 {
		t.Fatalf("a: %d publish failures, %d queued", s.PublishFailures, s.RetryQueued)
	}
}
