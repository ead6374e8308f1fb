package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/internal/testenv"
)

// syncBuffer is an io.Writer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestBadConfig: every bad setting fails at start with one line naming the
// variable, whether it came from the environment or a flag.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"L1 TTL", map[string]string{"CACHE_L1_TTL": "abc"}, nil, `CACHE_L1_TTL: invalid duration "abc"`},
		{"L1 TTL flag", nil, []string{"-cache-l1-ttl", "abc"}, `CACHE_L1_TTL: invalid duration "abc"`},
		{"flag over env", map[string]string{"CACHE_L2_TTL": "1h"}, []string{"-cache-l2-ttl", "-1s"}, `CACHE_L2_TTL: -1s, want a positive duration`},
		{"L2 TTL zero", map[string]string{"CACHE_L2_TTL": "0"}, nil, `CACHE_L2_TTL: 0s, want a positive duration`},
		{"miss path", map[string]string{"CACHE_MISS_PATH": "scriptless"}, nil, `CACHE_MISS_PATH: invalid miss path "scriptless", want lua or plain`},
		{"refresh ahead of 1", map[string]string{"CACHE_REFRESH_AHEAD": "1"}, nil, `CACHE_REFRESH_AHEAD: "1", want a number from 0 to below 1`},
		{"negative TTL", map[string]string{"CACHE_NEGATIVE_TTL": "soon"}, nil, `CACHE_NEGATIVE_TTL: invalid duration "soon"`},
		{"L1 over L2", map[string]string{"CACHE_L1_TTL": "2h"}, nil, `CACHE_L1_TTL: 2h0m0s exceeds CACHE_L2_TTL 1h0m0s`},
		{"L1 size", map[string]string{"CACHE_L1_SIZE": "lots"}, nil, `CACHE_L1_SIZE: invalid integer "lots"`},
		{"L1 size zero", nil, []string{"-cache-l1-size", "0"}, `CACHE_L1_SIZE: 0, want at least 1`},
		{"mode", map[string]string{"CACHE_MODE": "fast"}, nil, `CACHE_MODE: invalid mode "fast"`},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, nil, `LOG_LEVEL: invalid level "loud"`},
		{"addr", map[string]string{"ADDR": "8080"}, nil, `ADDR: invalid listen address "8080"`},
		{"pprof addr", map[string]string{"PPROF_ADDR": "6060"}, nil, `PPROF_ADDR: invalid listen address "6060"`},
		{"otlp endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, nil, `OTEL_EXPORTER_OTLP_ENDPOINT: invalid URL "127.0.0.1:4318"`},
		{"database URL", map[string]string{"DATABASE_URL": "postgres://127.0.0.1:notaport/x"}, nil, `DATABASE_URL: `},
		{"redis URL", map[string]string{"REDIS_URL": "http://127.0.0.1:6379"}, nil, `REDIS_URL: `},
		{"cluster URL", map[string]string{"REDIS_MODE": "cluster", "REDIS_URL": "redis://127.0.0.1:7000?addr=127.0.0.1:7001&bogus=1"}, nil, `REDIS_URL: not a valid URL for REDIS_MODE cluster`},
		{"sentinel URL", map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": "redis://127.0.0.1:26379"}, nil, `REDIS_URL: not a valid URL for REDIS_MODE sentinel: sentinel mode needs the master's name`},
		{"redis mode", map[string]string{"REDIS_MODE": "ring"}, nil, `REDIS_MODE: invalid mode "ring"`},
		{"CA file missing", map[string]string{"REDIS_URL": "rediss://127.0.0.1:6380", "REDIS_CA_FILE": "/nonexistent/ca.pem"}, nil, `REDIS_CA_FILE: open /nonexistent/ca.pem`},
		{"CA file not PEM", map[string]string{"REDIS_URL": "rediss://127.0.0.1:6380", "REDIS_CA_FILE": "run_test.go"}, nil, `REDIS_CA_FILE: run_test.go: no PEM certificate in it`},
		{"CA without TLS", map[string]string{"REDIS_CA_FILE": "run_test.go"}, nil, `REDIS_CA_FILE: set, but REDIS_URL is not rediss://`},
		{"shutdown delay", map[string]string{"SHUTDOWN_DELAY": "-1s"}, nil, `SHUTDOWN_DELAY: -1s, want zero or a positive duration`},
		{"topology interval", map[string]string{"REDIS_TOPOLOGY_INTERVAL": "0"}, nil, `REDIS_TOPOLOGY_INTERVAL: 0s, want a positive duration`},
		{"topology interval flag", nil, []string{"-redis-topology-interval", "often"}, `REDIS_TOPOLOGY_INTERVAL: invalid duration "often"`},
		{"stale if error", map[string]string{"CACHE_STALE_IF_ERROR": "60"}, nil, `CACHE_STALE_IF_ERROR: invalid duration "60"`},
		{"soft timeout", nil, []string{"-cache-soft-timeout", "-1s"}, `CACHE_SOFT_TIMEOUT: -1s, want zero or a positive duration`},
		{"fail-safe copies TTL", map[string]string{"CACHE_FAIL_SAFE_L2_TTL": "-1m"}, nil, `CACHE_FAIL_SAFE_L2_TTL: -1m0s, want zero or a positive duration`},
		{"namespace", nil, []string{"-cache-namespace", ""}, `CACHE_NAMESPACE: must not be empty`},
		{"extra args", nil, []string{"serve", "now"}, `unexpected arguments`},
		{"command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"seed n", nil, []string{"seed", "-n", "0"}, `seed: -n 0: want at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			args := append([]string{"productsd"}, tt.args...)
			err := run(context.Background(), args, envFunc(tt.env), &stdout, &stderr)
			if err == nil {
				t.Fatal("run: got nil error")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("got %q, want one line starting %q", msg, tt.want)
			}
			if stdout.String() != "" {
				t.Fatalf("printed %q before failing", stdout.String())
			}
		})
	}
}

// TestHelpAndVersion: -h lists every command and setting and succeeds;
// -version names the module.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"serve", "-h"}, {"help"}} {
		var stdout, stderr syncBuffer
		if err := run(context.Background(), append([]string{"productsd"}, args...), envFunc(nil), &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, want := range []string{"migrate", "seed", "healthcheck", "env", "-version", "REDIS_MODE", "SHUTDOWN_DELAY", "-shutdown-delay"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v: usage lacks %q", args, want)
			}
		}
	}
	var stdout syncBuffer
	if err := run(context.Background(), []string{"productsd", "-version"}, envFunc(nil), &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "productsd github.com/tiercache/productcache ") || !strings.Contains(stdout.String(), " revision ") {
		t.Fatalf("-version printed %q", stdout.String())
	}
}

// TestConfigPrecedence: flags win over the environment, which wins over
// the defaults.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CACHE_MODE": "bogus", "CACHE_L1_SIZE": "7", "CACHE_NAMESPACE": "from-env"}
	cfg, err := parseConfig("serve", []string{"-cache-mode", "redis", "-cache-namespace", "from-flag"}, envFunc(env), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.mode != "redis" || cfg.namespace != "from-flag" || cfg.l1Size != 7 || cfg.l1TTL != 30*time.Second || cfg.addr != ":8080" {
		t.Fatalf("got %+v", cfg)
	}
	if cfg.replicaID == "" {
		t.Fatal("no default replica id")
	}
	if cfg.topologyEvery != 200*time.Millisecond {
		t.Fatalf("REDIS_TOPOLOGY_INTERVAL default: got %v, want 200ms", cfg.topologyEvery)
	}
	if cfg.scriptFreeMiss {
		t.Fatal("CACHE_MISS_PATH default: plain, want lua")
	}
	env = map[string]string{"REDIS_TOPOLOGY_INTERVAL": "50ms", "CACHE_MISS_PATH": "plain"}
	if cfg, err = parseConfig("serve", nil, envFunc(env), io.Discard, nil); err != nil || cfg.topologyEvery != 50*time.Millisecond || !cfg.scriptFreeMiss {
		t.Fatalf("REDIS_TOPOLOGY_INTERVAL=50ms CACHE_MISS_PATH=plain: got %v, %v, %v", cfg.topologyEvery, cfg.scriptFreeMiss, err)
	}
}

// TestRunCancelledContext: run with a context that is already cancelled
// starts, prints its address, and returns cleanly at once.
func TestRunCancelledContext(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr syncBuffer
	env := map[string]string{"ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL()}
	if err := run(ctx, []string{"productsd"}, envFunc(env), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "productsd listening on http://127.0.0.1:") {
		t.Fatalf("stdout: %q", stdout.String())
	}
}

var listenRE = regexp.MustCompile(`productsd listening on (http://\S+) \(mode (\w+), replica (\S+)\)`)

// startRun runs the server in-process and returns its base URL and a
// function that stops it and returns run's error.
func startRun(t *testing.T, env map[string]string, args ...string) (string, func() error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"productsd"}, args...), envFunc(env), &stdout, &stderr) }()
	var base string
	waitFor(t, 10*time.Second, "the listening line", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		m := listenRE.FindStringSubmatch(stdout.String())
		if m == nil {
			return false
		}
		base = m[1]
		return true
	})
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("run did not return within 15s of cancel")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop, &stderr
}

// TestRunServes: run serves the API in-process, becomes ready, and
// returns nil when its context is cancelled.
func TestRunServes(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(), "LOG_LEVEL": "debug"}
	base, stop, stderr := startRun(t, env, "-addr", "127.0.0.1:0", "-replica-id", "inproc")
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	id := post(t, base, `{"name":"in process","price_cents":1}`)
	resp := get(t, base+"/products/"+id)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Status") == "" {
		t.Fatalf("GET: got %d, Cache-Status %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	logs := stderr.String()
	for _, want := range []string{`"msg":"request"`, `"route":"/products/:id"`, `"msg":"productsd: stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// TestDatabaseDownAtStart: with no database the server starts anyway,
// answers /healthz, 503s the API and /readyz, and stops cleanly: no crash
// loop.
func TestDatabaseDownAtStart(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":    "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1",
		"CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(),
	}
	base, stop, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	if code := get(t, base+"/healthz").StatusCode; code != http.StatusOK {
		t.Fatalf("/healthz: got %d", code)
	}
	resp := get(t, base+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(resp.body, `"database":"down"`) {
		t.Fatalf("/readyz: got %d %s", resp.StatusCode, resp.body)
	}
	if code := get(t, base+"/products").StatusCode; code != http.StatusServiceUnavailable {
		t.Fatalf("GET /products: got %d, want 503", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestRedisDownAtStart: with Redis unreachable the server serves from
// PostgreSQL and says so in /readyz, which stays 200.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": "redis://127.0.0.1:1/0", "CACHE_NAMESPACE": "unused"}
	base, stop, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	resp := get(t, base+"/readyz")
	if !strings.Contains(resp.body, `"redis":"down"`) || !strings.Contains(resp.body, `"invalidation":"down"`) {
		t.Fatalf("/readyz: got %s", resp.body)
	}
	id := post(t, base, `{"name":"no redis","price_cents":1}`)
	for range 3 {
		if resp := get(t, base+"/products/"+id); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: got %d %s", resp.StatusCode, resp.body)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestSeedAndMigrate: migrate, then seed with COPY, printing progress and
// a final line.
func TestSeedAndMigrate(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL()}
	var stdout, stderr syncBuffer
	if err := run(context.Background(), []string{"productsd", "migrate"}, envFunc(env), &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	if got := stdout.String(); got != "migrations applied\n" {
		t.Fatalf("migrate printed %q", got)
	}
	stdout = syncBuffer{}
	if err := run(context.Background(), []string{"productsd", "seed", "-n", "25000"}, envFunc(env), &stdout, &stderr); err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || lines[0] != "seeded 10000/25000 products" || !regexp.MustCompile(`^seeded 25000 products in \d+\.\d\ds$`).MatchString(lines[3]) {
		t.Fatalf("seed printed %q", lines)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, distinct int
	if err := conn.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT id) FROM products WHERE version = 1").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 25000 || distinct != 25000 {
		t.Fatalf("got %d rows (%d distinct), want 25000", n, distinct)
	}
}

type httpResult struct {
	*http.Response
	body string
}

var client = &http.Client{Timeout: 10 * time.Second}

func get(t *testing.T, url string) httpResult {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp, string(b)}
}

// post creates a product and returns its id.
func post(t *testing.T, base, body string) string {
	t.Helper()
	resp, err := client.Post(base+"/products", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var p struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: got %d, %v", resp.StatusCode, err)
	}
	return p.ID
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, cond)
}
