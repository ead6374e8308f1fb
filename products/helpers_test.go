package products

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/tiercache"
)

// replica is one in-process productsd: its own pool, Redis client, cache,
// service and HTTP server, sharing the database schema and the Redis
// namespace with the other replicas of a test.
type replica struct {
	name  string
	svc   *Service
	store *Store
	cache *tiercache.Cache[Entry] // nil in mode none
	reg   *prometheus.Registry
	url   string
	// stopOutbox stops the replica's outbox marker and sweeper and waits
	// for them; it runs at the end of the test too.
	stopOutbox func()
}

// env is what the replicas of one test share.
type env struct {
	t     testing.TB
	dbURL string
	ns    string
	// outbox configures the outbox of replicas started after it is set.
	outbox OutboxOptions
	// manualOutbox: replicas run no outbox loops; the test drives marks
	// and sweeps itself.
	manualOutbox bool
}

func newEnv(t testing.TB) *env {
	t.Helper()
	_, dbURL := testenv.Schema(t)
	return &env{t: t, dbURL: dbURL, ns: testenv.Namespace(t)}
}

// testLogger logs warnings and errors to the test output when -v is on.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("test", t.Name())
}

// replica starts a replica in mode ("tiered", "redis", "local" or "none").
// Options may adjust the cache's options.
func (e *env) replica(name, mode string, adjust ...func(*tiercache.Options)) *replica {
	e.t.Helper()
	return e.replicaOn(name, mode, testenv.Redis(e.t), adjust...)
}

// replicaOn starts a replica whose cache uses the Redis client rdb.
func (e *env) replicaOn(name, mode string, rdb *redis.Client, adjust ...func(*tiercache.Options)) *replica {
	t := e.t
	t.Helper()
	pool := testenv.Pool(t, e.dbURL)
	store := NewStore(pool)
	r := &replica{name: name, store: store, reg: prometheus.NewRegistry()}
	var rdbForHealth = rdb
	if mode != "none" {
		// Redis calls get more time than in production (100 ms): these
		// tests check exact Cache-Status values and query counts, which a
		// Redis round trip delayed by a busy machine under -race would turn
		// into a (correct) fall-through to the database.
		// StalenessBound: these tests assert L1 hits and are not about the
		// freshness lease (tested in tiercache); on a loaded machine a
		// replica may fall 25ms behind, and its reads then rightly bypass
		// L1.
		opt := tiercache.Options{Namespace: e.ns, ReplicaID: name, Logger: testLogger(t), LeaseWait: 5 * time.Second, L2Timeout: time.Second,
			StalenessBound: time.Second}
		switch mode {
		case "tiered":
			opt.Mode = tiercache.ModeTiered
		case "redis":
			opt.Mode = tiercache.ModeL2Only
		case "local":
			opt.Mode = tiercache.ModeL1Only
		default:
			t.Fatalf("unknown mode %q", mode)
		}
		for _, f := range adjust {
			f(&opt)
		}
		c, err := tiercache.New[Entry](rdbForHealth, EntryCodec{}, opt)
		if err != nil {
			t.Fatalf("tiercache.New: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		r.cache = c
	}
	if mode == "local" || mode == "none" {
		rdbForHealth = nil
	}
	r.svc = NewService(store, r.cache, rdbForHealth, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.svc.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	r.stopOutbox = func() {}
	if !e.manualOutbox {
		r.stopOutbox = runOutbox(t, r.svc, e.outbox)
	}
	srv := httptest.NewServer(NewServer(testLogger(t), r.svc, r.reg))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	if r.cache != nil {
		waitFor(t, 5*time.Second, "cache ready on "+name, r.cache.Ready)
	}
	return r
}

// runOutbox runs svc's outbox until the returned stop is called or t
// ends.
func runOutbox(t testing.TB, svc *Service, opt OutboxOptions) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.RunOutbox(ctx, opt)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes: for "eventually"
// checks across replicas, never as synchronisation within one.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, cond)
}

// response is an HTTP answer with its body read.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 200},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// do sends a request; header is pairs of names and values. A body is sent
// as application/json unless a Content-Type is among the headers.
func do(t testing.TB, method, url, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{Response: resp, body: b}
}

// wantStatus fails t unless r has the status code.
func wantStatus(t testing.TB, r response, code int) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s %s: got status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, code, r.body)
	}
}

// wantProblem fails t unless r is a problem+json answer with code.
func wantProblem(t testing.TB, r response, code int) {
	t.Helper()
	wantStatus(t, r, code)
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: got Content-Type %q, want application/problem+json", r.Request.Method, r.Request.URL.Path, ct)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != code || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Fatalf("problem body %s: want type, title, status %d and detail", r.body, code)
	}
}

// create posts a product and returns its decoded body.
func (r *replica) create(t testing.TB, name string, price int64) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "price_cents": price})
	resp := do(t, http.MethodPost, r.url+"/products", string(body))
	wantStatus(t, resp, http.StatusCreated)
	var m map[string]any
	if err := json.Unmarshal(resp.body, &m); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	return m
}

// version GETs product id and returns its version (0 for a 404).
func (r *replica) version(t testing.TB, id string) int64 {
	t.Helper()
	resp := do(t, http.MethodGet, r.url+"/products/"+id, "")
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	wantStatus(t, resp, http.StatusOK)
	var p struct{ Version int64 }
	if err := json.Unmarshal(resp.body, &p); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	return p.Version
}

// listIDs GETs the first page of limit products and returns their ids.
func (r *replica) listIDs(t testing.TB, query string) []string {
	t.Helper()
	resp := do(t, http.MethodGet, r.url+"/products"+query, "")
	wantStatus(t, resp, http.StatusOK)
	var pg struct {
		Items []struct{ ID string }
	}
	if err := json.Unmarshal(resp.body, &pg); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	ids := make([]string, len(pg.Items))
	for i, it := range pg.Items {
		ids[i] = it.ID
	}
	return ids
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// rowCount counts the products in the replica's schema.
func (r *replica) rowCount(t testing.TB) int64 {
	t.Helper()
	n, err := r.store.Count(context.Background())
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// gets sums the "get" queries of the replicas' stores.
func gets(rs ...*replica) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.store.Queries("get")
	}
	return n
}

func mustPool(t testing.TB, url string) *pgxpool.Pool { return testenv.Pool(t, url) }

// newTestServer serves svc's API and returns its URL.
func newTestServer(t testing.TB, svc *Service) string {
	srv := httptest.NewServer(NewServer(testLogger(t), svc, prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	return srv.URL
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// rdbSet writes a raw Redis key.
func rdbSet(t testing.TB, key, val string) {
	t.Helper()
	if err := testenv.Redis(t).Set(context.Background(), key, val, time.Minute).Err(); err != nil {
		t.Fatalf("redis set: %v", err)
	}
}

func mustParse(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return id
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// fetch GETs url without failing the test, for use off the test goroutine.
func fetch(url string) (status int, header http.Header, body []byte, err error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// warmL1 reads product id through r until r answers it from L1. One read
// may not do: the write that made id may still be on its way to r as a
// message, and evict the first fill when it lands.
func (r *replica) warmL1(t testing.TB, id string) {
	t.Helper()
	waitFor(t, 5*time.Second, r.name+" to answer from L1", func() bool {
		return do(t, http.MethodGet, r.url+"/products/"+id, "").Header.Get("Cache-Status") == wantL1Hit
	})
}
