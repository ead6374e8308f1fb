package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// TestRedisComesBack: a replica started while Redis is down serves from
// PostgreSQL with L1 bypassed, and re-attaches by itself when Redis comes
// up: /readyz shows it, and reads are served from L1 again.
func TestRedisComesBack(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	rs := testenv.NewRedisServer(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": rs.URL(), "CACHE_NAMESPACE": "productsd-test"}
	base, stop, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	if r := get(t, base+"/readyz"); !strings.Contains(r.body, `"redis":"down"`) {
		t.Fatalf("/readyz with Redis down: %s", r.body)
	}
	id := post(t, base, `{"name":"before redis","price_cents":1}`)
	for range 2 {
		r := get(t, base+"/products/"+id)
		if r.StatusCode != http.StatusOK || strings.Contains(r.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("GET with Redis down: got %d, Cache-Status %q, want 200 from the database", r.StatusCode, r.Header.Get("Cache-Status"))
		}
	}

	rs.Start()
	waitFor(t, 15*time.Second, "Redis and the channel up in /readyz", func() bool {
		r := get(t, base+"/readyz")
		return strings.Contains(r.body, `"redis":"up"`) && strings.Contains(r.body, `"invalidation":"up"`)
	})
	waitFor(t, 5*time.Second, "an L1 hit", func() bool {
		return get(t, base+"/products/"+id).Header.Get("Cache-Status") == "productsd-l1; hit"
	})
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestDatabaseComesBack: a replica started while PostgreSQL is unreachable
// answers 503s, keeps retrying its migrations in the background, and
// serves once the database is reachable, without a restart.
func TestDatabaseComesBack(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host, false)
	u.Host = proxy.Addr()
	env := map[string]string{"DATABASE_URL": u.String(), "REDIS_URL": testenv.RedisURL(), "CACHE_NAMESPACE": testenv.Namespace(t)}
	base, stop, stderr := startRun(t, env, "-addr", "127.0.0.1:0")

	waitFor(t, 10*time.Second, "a failed migration attempt", func() bool {
		return strings.Contains(stderr.String(), "migrations failed, retrying")
	})
	if r := get(t, base+"/readyz"); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database down: got %d %s", r.StatusCode, r.body)
	}
	if code := get(t, base+"/products").StatusCode; code != http.StatusServiceUnavailable {
		t.Fatalf("GET /products with the database down: got %d, want 503", code)
	}

	proxy.SetUp(true)
	waitFor(t, 15*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	id := post(t, base, `{"name":"after the outage","price_cents":1}`)
	if r := get(t, base+"/products/"+id); r.StatusCode != http.StatusOK {
		t.Fatalf("GET: got %d %s", r.StatusCode, r.body)
	}

	// And a database that goes away again gives 503s, not a crash.
	proxy.SetUp(false)
	waitFor(t, 10*time.Second, "/readyz 503", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusServiceUnavailable })
	if code := get(t, base+"/products?limit=7").StatusCode; code != http.StatusServiceUnavailable {
		t.Fatalf("GET /products after the database went away: got %d, want 503", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestStaleIfErrorDefaultFromConfig: CACHE_STALE_IF_ERROR reaches the
// service: after a write and a database cut, a read without a directive
// gets the superseded version, labelled stale (docs/design.md §3.16).
func TestStaleIfErrorDefaultFromConfig(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host, true)
	u.Host = proxy.Addr()
	env := map[string]string{"DATABASE_URL": u.String(), "REDIS_URL": testenv.RedisURL(), "CACHE_NAMESPACE": testenv.Namespace(t),
		"CACHE_STALE_IF_ERROR": "1m"}
	base, stop, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 15*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	id := post(t, base, `{"name":"old","price_cents":1}`)
	if r := get(t, base+"/products/"+id); r.StatusCode != http.StatusOK {
		t.Fatalf("GET: got %d %s", r.StatusCode, r.body)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/products/"+id, strings.NewReader(`{"name":"new","price_cents":2}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	proxy.SetUp(false)
	r := get(t, base+"/products/"+id)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, `"price_cents":1`) || r.Header.Get("Age") == "" ||
		!strings.HasPrefix(r.Header.Get("Cache-Status"), `productsd-failsafe; hit; ttl=-`) {
		t.Fatalf("GET with the database cut: %d, Age %q, Cache-Status %q, %s", r.StatusCode, r.Header.Get("Age"), r.Header.Get("Cache-Status"), r.body)
	}
	if m := get(t, base+"/metrics").body; !regexp.MustCompile(`(?m)^tiercache_stale_served_total\{[^}]*reason="error"[^}]*\} 1$`).MatchString(m) {
		t.Fatalf("/metrics: no tiercache_stale_served_total{reason=\"error\"} 1 in\n%s", m)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
