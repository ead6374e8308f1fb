package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/loadtest/cluster"
)

// TestEndToEnd builds productsd and loadtest, starts three tiered productsd
// processes on their own database and cache namespace, and runs the
// loadtest binary against them: once to check the JSON summary, once with a
// threshold that cannot pass to check exit status 99.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis; skipped with -short")
	}
	dbURL := envOr(os.Getenv, "DATABASE_URL", defaultDatabaseURL)
	redisURL := envOr(os.Getenv, "REDIS_URL", defaultRedisURL)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	requirePostgres(ctx, t, dbURL)

	dir := t.TempDir()
	productsd, lt := binaries(t)

	db, drop, err := cluster.TempDatabase(ctx, dbURL, "loadtest_e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	if err := cluster.Migrate(ctx, productsd, db, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("loadtest-e2e-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if err := cluster.CleanRedis(redisURL, ns); err != nil {
			t.Error(err)
		}
	})
	if err := cluster.Seed(ctx, productsd, db, 500, nil, "CACHE_NAMESPACE="+ns, "REDIS_URL="+redisURL); err != nil {
		t.Fatal(err)
	}
	cl, err := cluster.StartCluster(ctx, cluster.Config{
		Binary: productsd, DatabaseURL: db, RedisURL: redisURL, Mode: "tiered", Replicas: 3, Namespace: ns,
	})
	if err != nil {
		t.Fatalf("start productsd: %v (is Redis up at %s?)", err, redisURL)
	}
	t.Cleanup(cl.Stop)
	targets := strings.Join(cl.URLs(), ",")

	summaryFile, htmlFile := filepath.Join(dir, "summary.json"), filepath.Join(dir, "report.html")
	out, code := runBinary(ctx, t, lt, "run", "-targets", targets, "-database-url", db, "-duration", "3s", "-vus", "8",
		"-products", "500", "-keys", "zipf", "-zipf-s", "1.1", "-mix", "get=85,list=2,update=6,create=1,delete=1,batch=5", "-batch-size", "20",
		"-probe", "-threshold", `cache_hit_ratio{tier="l1"}>0`, "-out", "summary="+summaryFile, "-out", "html="+htmlFile)
	if code != 0 {
		t.Fatalf("loadtest run exited %d, want 0:\n%s\n%s", code, out, cl.Output())
	}
	var sum map[string]any
	b, err := os.ReadFile(summaryFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"http_reqs", "http_req_duration", "http_req_failed", "checks", "types", "cache",
		"db_queries", "consistency", "status_codes", "failures", "lost_writes", "thresholds", "thresholds_ok", "series"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary has no %q", k)
		}
	}
	cache := sum["cache"].(map[string]any)
	if cache["l1"].(float64) <= 0 || cache["l2"].(float64) <= 0 || cache["origin"].(float64) <= 0 {
		t.Errorf("cache ratios %v, want L1 hits, L2 hits and database reads across 3 replicas", cache)
	}
	batch := sum["types"].(map[string]any)["batch"].(map[string]any)
	bc := batch["cache"].(map[string]any)
	if n := batch["requests"].(float64); n == 0 || batch["failed"].(float64) != 0 || bc["classified"].(float64) != 20*n || bc["unknown"].(float64) != 0 {
		t.Errorf("types.batch %v, want batches of 20 keys, each key classified from productsd's Cache-Status detail, none failed", batch)
	}
	// A count, not a rate: under two busy loops and -race three replicas
	// served 75 requests in the 3 s. What must hold is that every request
	// is counted once, under its type.
	var byType float64
	for _, ts := range sum["types"].(map[string]any) {
		byType += ts.(map[string]any)["requests"].(float64)
	}
	if n := sum["http_reqs"].(float64); n <= 0 || n != byType {
		t.Errorf("http_reqs %v, the types' requests add up to %v: want the same, above 0", n, byType)
	}
	if db := sum["db_queries"].(map[string]any); db["available"] != true || db["total"].(float64) <= 0 {
		t.Errorf("db_queries %v, want a positive delta from every target", db)
	}
	if c := sum["consistency"].(map[string]any); c["enabled"] != true || c["reads"].(float64) <= 0 || c["writes"].(float64) <= 0 {
		t.Errorf("consistency %v, want probed reads and writes", c)
	}
	if l := sum["lost_writes"].(map[string]any); l["enabled"] != true || l["ids"].(float64) <= 0 || l["lost"].(float64) != 0 || l["database"] != true {
		t.Errorf("lost_writes %v, want written ids read back (database too) and none lost", l)
	}
	if html, err := os.ReadFile(htmlFile); err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Errorf("HTML report missing or without charts (%v)", err)
	}

	out, code = runBinary(ctx, t, lt, "run", "-targets", targets, "-duration", "1s", "-vus", "2",
		"-products", "500", "-threshold", "http_req_duration: p(99)<0.001ms")
	if code != exitThresholds {
		t.Errorf("loadtest with an impossible threshold exited %d, want %d:\n%s", code, exitThresholds, out)
	}
	if !strings.Contains(out, "✗ http_req_duration: p(99)<0.001ms") {
		t.Errorf("summary does not show the failed threshold:\n%s", out)
	}
}

func requirePostgres(ctx context.Context, t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("PostgreSQL unreachable at %s (set DATABASE_URL, or run go test -short): %v", cluster.Redact(dbURL), err)
	}
	conn.Close(ctx)
}

// binDir holds the binaries built once for all end-to-end tests.
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds productsd and loadtest once and returns their paths.
func binaries(t *testing.T) (productsd, lt string) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "loadtest-e2e-bin-"); buildErr != nil {
			return
		}
		for _, name := range []string{"productsd", "loadtest"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name),
				"github.com/tiercache/productcache/cmd/"+name).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build cmd/%s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "productsd"), filepath.Join(binDir, "loadtest")
}

// runBinary runs the loadtest binary and returns its combined output and
// exit status.
func runBinary(ctx context.Context, t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return "", 0
}

// TestCompareEndToEnd runs `loadtest compare` over two real configurations
// and the static ceiling, briefly, on a private redis-server, and checks
// the table, the JSON figures (field names as CI reads them, CPU per
// request of every component), that replicas work behind the simulated
// network's proxies, two rounds taking turns (medians, every round in the
// JSON), the k6 summary export, that a failed threshold exits 99, and that
// the database and the redis-server it made are gone afterwards.
func TestCompareEndToEnd(t *testing.T) {
	ctx, dbURL, productsd, lt := startE2E(t, 90*time.Second)
	dir := t.TempDir()

	out := filepath.Join(dir, "compare.json")
	text, code := runBinary(ctx, t, lt, "compare", "-productsd", productsd, "-configs", "none,tiered,static",
		"-replicas", "2", "-duration", "1s", "-warmup", "500ms", "-vus", "4", "-products", "300", "-out", "summary="+out,
		"-threshold", "http_req_failed<0.01", "-threshold", "rps_ratio{config:tiered,base:static}>=1000", "-net-latency", "200us", "-rounds", "2",
		"-summary-export", filepath.Join(dir, "k6.json"))
	if code != exitThresholds {
		t.Fatalf("compare exited %d, want %d (one threshold cannot hold):\n%s", code, exitThresholds, text)
	}
	for _, want := range []string{"config", "none", "tiered", "static", "tiered/static", "CPU µs/req", "through proxies adding 200µs each way",
		"ok   http_req_failed<0.01 [tiered]", "FAIL rps_ratio{config:tiered,base:static}>=1000",
		"2 rounds", "round 2: none", "median of rounds"} {
		if !strings.Contains(text, want) {
			t.Errorf("compare output lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	configs := compareJSON(t, b)
	// -summary-export describes the tiered configuration, in k6's shape.
	k6, err := os.ReadFile(filepath.Join(dir, "k6.json"))
	if err != nil {
		t.Fatalf("compare -summary-export wrote nothing: %v", err)
	}
	var export struct {
		Metrics map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(k6, &export); err != nil || export.Metrics["http_reqs"]["count"] == nil {
		t.Errorf("summary export %s: want k6's metrics with http_reqs.count (%v)", k6, err)
	}
	for i, name := range []string{"none", "tiered", "static"} {
		c := configs[i]
		if c["config"] != name || c["replicas"] != 2.0 || c["rps"].(float64) <= 0 || c["failed"] != 0.0 {
			t.Errorf("config %d: got %v, want %s with 2 replicas, some requests and no failures", i, c, name)
		}
		for part, v := range c["cpu_us_per_request"].(map[string]any) {
			if f, ok := v.(float64); !ok || f < 0 || (part != "redis" && part != "postgres" && f == 0) {
				t.Errorf("%s: cpu_us_per_request.%s = %v, want a measured figure", name, part, v)
			}
		}
	}
	if none, tiered := configs[0], configs[1]; none["db_queries_per_request"].(float64) < 0.9 ||
		none["hit_ratio"].(map[string]any)["origin"] != 0.0 || tiered["hit_ratio"].(map[string]any)["l1"].(float64) <= 0 ||
		none["cpu_us_per_request"].(map[string]any)["postgres"].(float64) <= 0 {
		t.Errorf("none: %v; tiered: %v; want ~1 query per request and PostgreSQL CPU for none, L1 hits for tiered", none, tiered)
	}
	// The tiered configuration starts cold: its misses read and fill L2.
	if fam := configs[1]["redis_us_per_request_by_family"].(map[string]any); fam["reads"].(float64) <= 0 || fam["scripts_tx"].(float64) <= 0 {
		t.Errorf("tiered: Redis by family %v, want reads and scripts (the lease and fill)", fam)
	}
	// What compare made is gone: its database and its redis-server.
	requireDatabaseDropped(ctx, t, dbURL, text)
	rs := regexp.MustCompile(`private redis-server on (\S+)`).FindStringSubmatch(text)
	if rs == nil {
		t.Fatalf("compare did not name its redis-server:\n%s", text)
	}
	if c, err := net.DialTimeout("tcp", rs[1], time.Second); err == nil {
		c.Close()
		t.Errorf("the private redis-server on %s still answers", rs[1])
	}
}

// compareJSON checks that b has exactly the fields of compare's JSON
// (docs/design.md §6: what CI tracks) and returns its configs.
func compareJSON(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var doc struct {
		Configs []map[string]any `json:"configs"`
		Rounds  []struct {
			Configs []map[string]any `json:"configs"`
		} `json:"rounds"`
		Ratios []map[string]any `json:"ratios"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rounds) != 2 || len(doc.Rounds[1].Configs) != 3 || len(doc.Ratios) == 0 {
		t.Fatalf("want 2 rounds of 3 configs and the target ratios:\n%s", b)
	}
	want := []string{"config", "cpu_us_per_request", "db_queries_per_request", "failed", "hit_ratio", "p50_ms", "p99_ms", "redis_us_per_request_by_family", "replicas", "rps", "stale_reads"}
	nested := map[string][]string{"cpu_us_per_request": {"postgres", "redis", "replicas", "total"}, "hit_ratio": {"l1", "l2", "origin"},
		"redis_us_per_request_by_family": {"fills_leases", "invalidations", "other", "pings", "reads", "scripts_tx"}}
	if len(doc.Configs) != 3 {
		t.Fatalf("got %d configs, want 3:\n%s", len(doc.Configs), b)
	}
	for _, c := range doc.Configs {
		if got := slices.Sorted(maps.Keys(c)); !slices.Equal(got, want) {
			t.Fatalf("fields %v, want %v", got, want)
		}
		for k, fields := range nested {
			m, _ := c[k].(map[string]any)
			if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, fields) {
				t.Fatalf("%s fields %v, want %v", k, got, fields)
			}
		}
	}
	return doc.Configs
}

// TestDemoEndToEnd runs `loadtest demo` briefly: it makes a database,
// seeds it, starts two replicas behind the simulated network's proxies,
// runs the scenario with no failed request, writes the summary, and drops
// the database it made.
func TestDemoEndToEnd(t *testing.T) {
	ctx, dbURL, productsd, lt := startE2E(t, 90*time.Second)
	out := filepath.Join(t.TempDir(), "demo.json")
	text, code := runBinary(ctx, t, lt, "demo", "-productsd", productsd, "-replicas", "2", "-duration", "1s",
		"-vus", "4", "-products", "200", "-net-latency", "200us", "-quiet", "-out", "summary="+out)
	if code != 0 {
		t.Fatalf("demo exited %d, want 0:\n%s", code, text)
	}
	for _, want := range []string{"migrating and seeding 200 products", "through proxies adding 200µs each way", "2 tiered replicas: http://"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Requests int64 `json:"http_reqs"`
		Failed   int64 `json:"http_req_failures"`
	}
	if err := json.Unmarshal(b, &sum); err != nil || sum.Requests == 0 || sum.Failed != 0 {
		t.Errorf("summary %s: want requests and no failures (%v)", b, err)
	}
	requireDatabaseDropped(ctx, t, dbURL, text)
}

// startE2E skips the test under -short, checks that PostgreSQL answers,
// and builds the binaries; ctx ends after timeout.
func startE2E(t *testing.T, timeout time.Duration) (ctx context.Context, dbURL, productsd, lt string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis; skipped with -short")
	}
	dbURL = envOr(os.Getenv, "DATABASE_URL", defaultDatabaseURL)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	requirePostgres(ctx, t, dbURL)
	productsd, lt = binaries(t)
	return ctx, dbURL, productsd, lt
}

// requireDatabaseDropped checks that the fresh database a command's output
// names is gone from the server at dbURL.
func requireDatabaseDropped(ctx context.Context, t *testing.T, dbURL, output string) {
	t.Helper()
	db := regexp.MustCompile(`fresh database \(postgres://[^/]*/(loadtest_[0-9a-f]+)`).FindStringSubmatch(output)
	if db == nil {
		t.Fatalf("the command did not name its database:\n%s", output)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db[1]).Scan(&exists); err != nil || exists {
		t.Errorf("database %s still exists (%v)", db[1], err)
	}
}
