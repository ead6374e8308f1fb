package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/loadtest/cluster"
	"github.com/tiercache/productcache/loadtest/compare"
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
		"-products", "500", "-keys", "zipf", "-zipf-s", "1.1", "-mix", "get=90,list=2,update=6,create=1,delete=1",
		"-probe", "-threshold", `cache_hit_ratio{tier="l1"}>0`, "-out", "json="+summaryFile, "-out", "html="+htmlFile)
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
	if sum["http_reqs"].(float64) < 100 {
		t.Errorf("only %v requests in 3s", sum["http_reqs"])
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
// and the static ceiling, briefly, and checks the table and the JSON rows,
// and that the database and the Redis keys it made are gone afterwards.
func TestCompareEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis; skipped with -short")
	}
	dbURL := envOr(os.Getenv, "DATABASE_URL", defaultDatabaseURL)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	requirePostgres(ctx, t, dbURL)
	dir := t.TempDir()
	productsd, lt := binaries(t)

	out := filepath.Join(dir, "compare.json")
	text, code := runBinary(ctx, t, lt, "compare", "-productsd", productsd, "-configs", "none,tiered,static",
		"-replicas", "2", "-duration", "1s", "-warmup", "500ms", "-vus", "4", "-products", "300", "-out", "json="+out)
	if code != 0 {
		t.Fatalf("compare exited %d:\n%s", code, text)
	}
	for _, want := range []string{"config", "none", "tiered", "static", "tiered/static"} {
		if !strings.Contains(text, want) {
			t.Errorf("compare output lacks %q:\n%s", want, text)
		}
	}
	var res compare.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 3 {
		t.Fatalf("got %d rows, want 3", len(res.Rows))
	}
	none, tiered, static := res.Rows[0].Summary, res.Rows[1].Summary, res.Rows[2].Summary
	if none.Requests == 0 || tiered.Requests == 0 || static.Requests == 0 {
		t.Errorf("requests none=%d tiered=%d static=%d, want all > 0", none.Requests, tiered.Requests, static.Requests)
	}
	if none.Cache.Classified != 0 || tiered.Cache.L1 <= 0 || none.DB.PerReq < 0.9 {
		t.Errorf("none: %+v db %+v; tiered: %+v; want no Cache-Status and ~1 query per request for none, L1 hits for tiered",
			none.Cache, none.DB, tiered.Cache)
	}
	// What compare made is gone: its database and its Redis keys.
	db := regexp.MustCompile(`fresh database \(postgres://[^/]*/(loadtest_[0-9a-f]+)`).FindStringSubmatch(text)
	ns := regexp.MustCompile(`cache namespaces (loadtest-compare-\d+)-`).FindStringSubmatch(text)
	if db == nil || ns == nil {
		t.Fatalf("compare did not name its database and namespaces:\n%s", text)
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
	opt, err := redis.ParseURL(envOr(os.Getenv, "REDIS_URL", defaultRedisURL))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, _, err := rdb.Scan(ctx, 0, ns[1]+"*", 1000).Result()
	if err != nil || len(keys) > 0 {
		t.Errorf("%d Redis keys of %s left behind (%v)", len(keys), ns[1], err)
	}
}
