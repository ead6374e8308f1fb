package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// TestRedisCluster: three productsd processes in REDIS_MODE cluster on a
// three-master Redis Cluster of the test's own, as an ACL user with
// aclRule: reads, writes, list pages and invalidation across replicas,
// over sharded pub/sub.
func TestRedisCluster(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	addrs := testenv.RedisCluster(t)
	for _, a := range addrs { // ACL users are per node
		setUser(t, a, "productsd", "s3cret", "cluster", aclRule)
	}
	url := strings.Replace(testenv.ClusterURL(addrs), "redis://", "redis://productsd:s3cret@", 1)
	env := map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": url, "CACHE_NAMESPACE": "cluster"}
	ps := startReplicas(t, env, "cluster-a", "cluster-b", "cluster-c")
	exerciseReplicas(t, ps)
	// The values really are spread over the masters.
	holders := 0
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		if n, _ := c.DBSize(context.Background()).Result(); n > 0 {
			holders++
		}
		_ = c.Close()
	}
	if holders < 2 {
		t.Errorf("keys on %d of 3 masters, want them spread", holders)
	}
	for _, p := range ps {
		p.stop(t)
	}
}

// TestRedisSentinelFailover: two productsd processes in REDIS_MODE
// sentinel, as an ACL user with aclRule on the data nodes, read
// continuously while the sentinel fails the master over.
// No read fails, both replicas re-attach to the new master by themselves
// (Redis and the invalidation channel up again), and a write after the
// failover is seen through the other replica at once: nothing stale.
func TestRedisSentinelFailover(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	s := testenv.RedisSentinel(t)
	for _, a := range []string{s.Master.Addr(), s.Replica.Addr()} { // the data nodes' user
		setUser(t, a, "productsd", "s3cret", "sentinel", aclRule)
	}
	env := map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": s.URL() + "&username=productsd&password=s3cret", "CACHE_NAMESPACE": "sentinel"}
	ps := startReplicas(t, env, "sentinel-a", "sentinel-b")
	a, b := ps[0], ps[1]
	id := post(t, a.url, `{"name":"failover","price_cents":1}`)
	a.version(t, id)
	b.version(t, id)

	var reads, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(p.url + "/products/" + id)
				reads.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	s.Failover()
	// Both invalidation subscriptions move to the new master; then the old
	// one goes away, so nothing can still depend on it.
	newMaster := redis.NewClient(&redis.Options{Addr: s.Replica.Addr()})
	defer newMaster.Close()
	waitFor(t, 5*time.Second, "both subscriptions on the new master", func() bool {
		list, _ := newMaster.ClientList(context.Background()).Result()
		// sub=1: subscribed to one channel (cmd= names the last command,
		// which is the freshness PING tiercache sends every 5ms).
		return strings.Count(list, " sub=1 ") >= len(ps)
	})
	s.Master.Stop()
	for _, p := range ps {
		waitFor(t, 20*time.Second, p.name+" re-attached after the failover", func() bool {
			r := get(t, p.url+"/readyz")
			return r.StatusCode == http.StatusOK && strings.Contains(r.body, `"redis":"up"`) && strings.Contains(r.body, `"invalidation":"up"`)
		})
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || reads.Load() < 10 {
		t.Fatalf("%d of %d reads failed during the failover, want none of many", failed.Load(), reads.Load())
	}

	// After it: a write through a is seen through b within the bound, and
	// the invalidation travelled over the new master's channel.
	b.version(t, id)
	b.version(t, id)
	req, _ := http.NewRequest(http.MethodPut, a.url+"/products/"+id, strings.NewReader(`{"name":"after","price_cents":2}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT after the failover: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, time.Second, "b to see version 2", func() bool { return b.version(t, id) == 2 })
	for _, p := range ps {
		p.stop(t)
	}
}

// TestRedisTLS: productsd reaches a TLS-only Redis through rediss:// with
// the private CA of REDIS_CA_FILE, and caches in it.
func TestRedisTLS(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	rs := testenv.NewTLSRedisServer(t, files)
	rs.Start()
	env := map[string]string{"REDIS_URL": rs.URL(), "REDIS_CA_FILE": files.CA, "CACHE_NAMESPACE": "tls"}
	ps := startReplicas(t, env, "tls-a", "tls-b")
	exerciseReplicas(t, ps)
	id := post(t, ps[0].url, `{"name":"tls","price_cents":1}`)
	ps[0].version(t, id)
	if cs := get(t, ps[1].url+"/products/"+id).Header.Get("Cache-Status"); !strings.HasPrefix(cs, "productsd-l2; hit") {
		t.Fatalf("second replica: Cache-Status %q, want an L2 hit", cs)
	}
	for _, p := range ps {
		p.stop(t)
	}
}

// TestRedisClusterTLS: two productsd processes in REDIS_MODE cluster on a
// TLS-only Redis Cluster, through rediss:// and REDIS_CA_FILE.
func TestRedisClusterTLS(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	addrs := testenv.RedisClusterTLS(t, files)
	url := strings.Replace(testenv.ClusterURL(addrs), "redis://", "rediss://", 1)
	env := map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": url, "REDIS_CA_FILE": files.CA, "CACHE_NAMESPACE": "cluster-tls"}
	ps := startReplicas(t, env, "cluster-tls-a", "cluster-tls-b")
	exerciseReplicas(t, ps)
	for _, p := range ps {
		p.stop(t)
	}
}

// TestRedisTLSWrongCA: a CA file that did not sign the server's
// certificate leaves Redis down in /readyz, with the reason in the log.
func TestRedisTLSWrongCA(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	rs := testenv.NewTLSRedisServer(t, testenv.NewTLSFiles(t))
	rs.Start()
	other := testenv.NewTLSFiles(t)
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": rs.URL(), "REDIS_CA_FILE": other.CA, "CACHE_NAMESPACE": "tls-wrong"}
	base, stop, stderr := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 10*time.Second, "/readyz 200 with Redis down", func() bool {
		r := get(t, base+"/readyz")
		return r.StatusCode == http.StatusOK && strings.Contains(r.body, `"redis":"down"`)
	})
	waitFor(t, 5*time.Second, "the certificate error in the log", func() bool {
		return strings.Contains(stderr.String(), "certificate signed by unknown authority")
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
