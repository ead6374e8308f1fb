package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// aclRule is the least-privilege Redis ACL of a productsd deployment whose
// CACHE_NAMESPACE is NS: its keys, its invalidation channel, and the
// commands tiercache and the readiness check send (tiercache/l2.go,
// invalidation.go, subscriber.go; products/health.go), plus the cluster
// client's node discovery. README.md shows the same rule;
// TestACLRuleDocumented keeps them together. The Cluster and Sentinel tests
// run as a user with this rule too.
const aclRule = "on >PASSWORD resetkeys ~NS:* resetchannels &NS:inval -@all " +
	"+get +mget +set +del +eval +evalsha +scan +publish +spublish +subscribe +ssubscribe +unsubscribe +sunsubscribe " +
	"+zadd +zremrangebyscore +zrange +ping +hello +wait +info +cluster|slots +cluster|myid +cluster|keyslot +command"

// setUser creates user with rule (NS and PASSWORD filled in) on addr.
func setUser(t *testing.T, addr, user, password, ns, rule string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	rule = strings.NewReplacer("NS", ns, "PASSWORD", password).Replace(rule)
	args := []any{"ACL", "SETUSER", user}
	for _, f := range strings.Fields(rule) {
		args = append(args, f)
	}
	if err := c.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %s %s: %v", user, rule, err)
	}
}

// TestRedisACL: productsd processes authenticated as a user with exactly
// aclRule cache, invalidate and report ready; a user whose rule lacks the
// channel leaves the invalidation channel down in /readyz, with Redis's
// NOPERM in the log.
func TestRedisACL(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	rs := testenv.NewRedisServer(t)
	rs.Start()
	const ns = "acl"
	setUser(t, rs.Addr(), "productsd", "s3cret", ns, aclRule)
	url := "redis://productsd:s3cret@" + rs.Addr() + "/0"
	ps := startReplicas(t, map[string]string{"REDIS_URL": url, "CACHE_NAMESPACE": ns}, "acl-a", "acl-b")
	exerciseReplicas(t, ps)
	// A batch read on a cold L1 reads L2 with MGET: one replica fills L2,
	// the other's batch must find it there.
	id := post(t, ps[0].url, `{"name":"acl batch","price_cents":1}`)
	ps[0].version(t, id)
	if r := get(t, ps[1].url+"/products?ids="+id); r.StatusCode != http.StatusOK ||
		!strings.Contains(r.Header.Get("Cache-Status"), "productsd-l2; hit") {
		t.Fatalf("batch read of a value in L2: %d, Cache-Status %q, want 200 and an L2 hit", r.StatusCode, r.Header.Get("Cache-Status"))
	}
	if st := get(t, ps[0].url+"/readyz").body; !strings.Contains(st, `"redis":"up"`) {
		t.Fatalf("/readyz: %s", st)
	}
	for _, p := range ps {
		p.stop(t) // also fails for a NOPERM in the log
	}

	// Without the channel.
	noChannel := strings.Replace(aclRule, "&NS:inval", "", 1)
	setUser(t, rs.Addr(), "nochannel", "s3cret", ns, noChannel)
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": ns, "REDIS_URL": "redis://nochannel:s3cret@" + rs.Addr() + "/0"}
	base, stop, stderr := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 10*time.Second, "NOPERM in the log", func() bool { return strings.Contains(stderr.String(), "NOPERM") })
	r := get(t, base+"/readyz")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `"invalidation":"down"`) {
		t.Fatalf("/readyz without the channel: got %d %s, want 200 with the invalidation channel down", r.StatusCode, r.body)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestACLRuleDocumented: the README shows aclRule as it is.
func TestACLRuleDocumented(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("NS", "productsd", "PASSWORD", "<password>").Replace(aclRule)
	if !strings.Contains(string(b), doc) {
		t.Fatalf("README.md does not show the ACL rule\n%s", doc)
	}
}

// aclPlainMiss is what CACHE_MISS_PATH=plain adds to aclRule: the
// compare-and-set of its fill is WATCH, MULTI and EXEC (README, "The miss
// path without Lua").
const aclPlainMiss = " +watch +multi +exec +unwatch"

// TestPlainMissPath: replicas started with CACHE_MISS_PATH=plain, as a
// user with aclRule and aclPlainMiss, cache, invalidate and batch as the
// scripted ones do, and their misses fill L2 with WATCH and EXEC, which
// the scripted path never sends.
func TestPlainMissPath(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	rs := testenv.NewRedisServer(t)
	rs.Start()
	const ns = "plain"
	setUser(t, rs.Addr(), "productsd", "s3cret", ns, aclRule+aclPlainMiss)
	url := "redis://productsd:s3cret@" + rs.Addr() + "/0"
	ps := startReplicas(t, map[string]string{"REDIS_URL": url, "CACHE_NAMESPACE": ns, "CACHE_MISS_PATH": "plain"}, "plain-a", "plain-b")
	exerciseReplicas(t, ps)
	id := post(t, ps[0].url, `{"name":"plain batch","price_cents":1}`)
	ps[0].version(t, id) // a miss: the lease, the load, the fill
	if r := get(t, ps[1].url+"/products?ids="+id); r.StatusCode != http.StatusOK ||
		!strings.Contains(r.Header.Get("Cache-Status"), "productsd-l2; hit") {
		t.Fatalf("batch read of a value the plain fill stored: %d, Cache-Status %q, want 200 and an L2 hit", r.StatusCode, r.Header.Get("Cache-Status"))
	}
	for _, p := range ps {
		p.stop(t) // also fails for a NOPERM in the log
	}
	c := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer c.Close()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"cmdstat_watch:", "cmdstat_exec:"} {
		if !strings.Contains(stats, cmd) {
			t.Errorf("no %s in INFO commandstats: the misses did not take the plain path\n%s", strings.TrimSuffix(cmd, ":"), stats)
		}
	}
}
