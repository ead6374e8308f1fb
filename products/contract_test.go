package products

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	wantDB    = "productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored"
	wantL2Hit = "productsd-l2; hit, productsd-l1; fwd=miss; stored"
	wantL1Hit = "productsd-l1; hit"
)

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// TestContract walks every row of the docs/design.md §4 table on two tiered
// replicas, with the Cache-Status of each tier.
func TestContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")

	// POST /products: 201, Location, the product at version 1.
	resp := do(t, http.MethodPost, a.url+"/products", `{"name":"  Product A  ","description":"first\nline","price_cents":1000}`)
	wantStatus(t, resp, http.StatusCreated)
	p := resp.json(t)
	id, _ := p["id"].(string)
	parsed, err := uuid.Parse(id)
	if err != nil || parsed.Version() != 7 || id != strings.ToLower(id) {
		t.Fatalf("got id %q, want a lower-case UUIDv7", id)
	}
	if got := resp.Header.Get("Location"); got != "/products/"+id {
		t.Fatalf("got Location %q, want /products/%s", got, id)
	}
	if p["name"] != "Product A" || p["description"] != "first\nline" || p["price_cents"] != 1000.0 || p["version"] != 1.0 {
		t.Fatalf("got %s, want the trimmed name, the description, price 1000, version 1", resp.body)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if s, _ := p[f].(string); !timestampRE.MatchString(s) {
			t.Fatalf("got %s %q, want RFC 3339 UTC with microseconds", f, s)
		}
	}
	if len(p) != 7 {
		t.Fatalf("got fields %v, want exactly the 7 of docs/design.md §4", p)
	}
	if got := resp.Header.Get("ETag"); got != `"1"` {
		t.Fatalf("got ETag %q, want \"1\"", got)
	}
	created := resp.body

	// GET /products/{id}: from the database, then L1 on the same replica,
	// then L2 on another one.
	url := a.url + "/products/" + id
	for i, want := range []string{wantDB, wantL1Hit} {
		resp = do(t, http.MethodGet, url, "")
		wantStatus(t, resp, http.StatusOK)
		if got := resp.Header.Get("Cache-Status"); got != want {
			t.Fatalf("GET %d: got Cache-Status %q, want %q", i, got, want)
		}
		if string(resp.body) != string(created) {
			t.Fatalf("GET %d: got %s, want %s", i, resp.body, created)
		}
		if resp.Header.Get("ETag") != `"1"` || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %d: got ETag %q Content-Type %q", i, resp.Header.Get("ETag"), resp.Header.Get("Content-Type"))
		}
	}
	resp = do(t, http.MethodGet, b.url+"/products/"+id, "")
	wantStatus(t, resp, http.StatusOK)
	if got := resp.Header.Get("Cache-Status"); got != wantL2Hit {
		t.Fatalf("GET on b: got Cache-Status %q, want %q", got, wantL2Hit)
	}

	// If-None-Match: 304 for a matching tag, a weak one, a list, and *.
	for _, inm := range []string{`"1"`, `W/"1"`, `"7", "1"`, `*`} {
		resp = do(t, http.MethodGet, url, "", "If-None-Match", inm)
		wantStatus(t, resp, http.StatusNotModified)
		if len(resp.body) != 0 || resp.Header.Get("ETag") != `"1"` || resp.Header.Get("Cache-Status") != wantL1Hit {
			t.Fatalf("If-None-Match %s: got body %q ETag %q Cache-Status %q", inm, resp.body, resp.Header.Get("ETag"), resp.Header.Get("Cache-Status"))
		}
	}
	wantStatus(t, do(t, http.MethodGet, url, "", "If-None-Match", `"2"`), http.StatusOK)

	// PUT /products/{id}: replaces, bumps the version; If-Match 412s on a
	// mismatch and 400s when malformed.
	resp = do(t, http.MethodPut, url, `{"name":"Product B","price_cents":1500}`, "If-Match", `"1"`)
	wantStatus(t, resp, http.StatusOK)
	p = resp.json(t)
	if p["name"] != "Product B" || p["description"] != "" || p["price_cents"] != 1500.0 || p["version"] != 2.0 || p["id"] != id {
		t.Fatalf("PUT: got %s, want Product B, no description, 1500, version 2", resp.body)
	}
	if resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("PUT: got ETag %q, want \"2\"", resp.Header.Get("ETag"))
	}
	if a.version(t, id) != 2 {
		t.Fatal("GET after PUT on the writing replica: want version 2")
	}
	wantProblem(t, do(t, http.MethodPut, url, `{"name":"C","price_cents":1}`, "If-Match", `"1"`), http.StatusPreconditionFailed)
	wantProblem(t, do(t, http.MethodPut, url, `{"name":"C","price_cents":1}`, "If-Match", `W/"2"`), http.StatusPreconditionFailed)
	wantProblem(t, do(t, http.MethodPut, url, `{"name":"C","price_cents":1}`, "If-Match", `2`), http.StatusBadRequest)
	resp = do(t, http.MethodPut, url, `{"name":"Product C","price_cents":1}`, "If-Match", `"9", "2"`)
	wantStatus(t, resp, http.StatusOK)
	wantStatus(t, do(t, http.MethodPut, url, `{"name":"Product D","price_cents":2}`, "If-Match", `*`), http.StatusOK)
	if v := a.version(t, id); v != 4 {
		t.Fatalf("got version %d, want 4", v)
	}

	// GET /products: the product is listed, next_after null on the last page.
	resp = do(t, http.MethodGet, a.url+"/products", "")
	wantStatus(t, resp, http.StatusOK)
	if !strings.HasSuffix(string(resp.body), `"next_after":null}`) || !strings.Contains(string(resp.body), `"id":"`+id+`"`) {
		t.Fatalf("GET /products: got %s", resp.body)
	}
	if resp.Header.Get("Cache-Status") != wantDB {
		t.Fatalf("GET /products: got Cache-Status %q, want %q", resp.Header.Get("Cache-Status"), wantDB)
	}

	// DELETE /products/{id}: 412 on a mismatch, then 204, then 404 (negative
	// results cached, with their Cache-Status).
	wantProblem(t, do(t, http.MethodDelete, url, "", "If-Match", `"1"`), http.StatusPreconditionFailed)
	resp = do(t, http.MethodDelete, url, "", "If-Match", `"4"`)
	wantStatus(t, resp, http.StatusNoContent)
	for i, want := range []string{wantDB, wantL1Hit} {
		resp = do(t, http.MethodGet, url, "")
		wantProblem(t, resp, http.StatusNotFound)
		if got := resp.Header.Get("Cache-Status"); got != want {
			t.Fatalf("GET %d after DELETE: got Cache-Status %q, want %q", i, got, want)
		}
	}
	wantProblem(t, do(t, http.MethodDelete, url, ""), http.StatusNotFound)
	wantProblem(t, do(t, http.MethodPut, url, `{"name":"E","price_cents":1}`), http.StatusNotFound)
	wantProblem(t, do(t, http.MethodPut, url, `{"name":"E","price_cents":1}`, "If-Match", `"4"`), http.StatusNotFound)

	// Wrong methods, unknown paths, malformed ids.
	resp = do(t, http.MethodPatch, url, `{}`)
	wantProblem(t, resp, http.StatusMethodNotAllowed)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "PUT") || !strings.Contains(allow, "DELETE") {
		t.Fatalf("405: got Allow %q", allow)
	}
	wantProblem(t, do(t, http.MethodDelete, a.url+"/products", ""), http.StatusMethodNotAllowed)
	wantProblem(t, do(t, http.MethodPost, a.url+"/healthz", ""), http.StatusMethodNotAllowed)
	wantProblem(t, do(t, http.MethodGet, a.url+"/nope", ""), http.StatusNotFound)
	wantProblem(t, do(t, http.MethodGet, a.url+"/products/not-a-uuid", ""), http.StatusBadRequest)
}

// TestAllow checks that OPTIONS answers 204 and that it and every 405 carry
// the exact Allow of the path: the methods that path serves, nothing more.
func TestAllow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	item := "/products/00000000-0000-7000-8000-000000000000"
	for _, tt := range []struct{ path, allow, wrong string }{
		{"/products", "GET, HEAD, OPTIONS, POST", http.MethodDelete},
		{item, "DELETE, GET, HEAD, OPTIONS, PUT", http.MethodPost},
		{"/healthz", "GET, HEAD, OPTIONS", http.MethodPost},
		{"/readyz", "GET, HEAD, OPTIONS", http.MethodPut},
		{"/metrics", "GET, HEAD, OPTIONS", http.MethodDelete},
	} {
		resp := do(t, http.MethodOptions, a.url+tt.path, "")
		wantStatus(t, resp, http.StatusNoContent)
		if got := resp.Header.Get("Allow"); got != tt.allow || len(resp.body) != 0 {
			t.Errorf("OPTIONS %s: got Allow %q and %d bytes, want %q and none", tt.path, got, len(resp.body), tt.allow)
		}
		for _, m := range []string{tt.wrong, http.MethodPatch, "BREW"} {
			resp := do(t, m, a.url+tt.path, "")
			wantProblem(t, resp, http.StatusMethodNotAllowed)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("%s %s: got Allow %q, want %q", m, tt.path, got, tt.allow)
			}
		}
	}
	wantProblem(t, do(t, http.MethodOptions, a.url+"/nope", ""), http.StatusNotFound)
	// A made-up method does not mint a new metrics series.
	if body := string(do(t, http.MethodGet, a.url+"/metrics", "").body); strings.Contains(body, "BREW") {
		t.Errorf("/metrics has a series labelled with a client's method")
	}
}

// TestMetricsHoldNoKeys: after reads, writes, misses and bad requests,
// /metrics names no product id, no cache key and no client-chosen value.
func TestMetricsHoldNoKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	id, _ := a.create(t, "secret-name", 100)["id"].(string)
	missing := "00000000-0000-7000-8000-00000000beef"
	do(t, http.MethodGet, a.url+"/products/"+id, "")
	do(t, http.MethodPut, a.url+"/products/"+id, `{"name":"x","price_cents":2}`)
	do(t, http.MethodGet, a.url+"/products/"+missing, "")
	do(t, http.MethodGet, a.url+"/products?after="+id+"&limit=7", "")
	do(t, http.MethodGet, a.url+"/client-chosen-path", "")
	body := string(do(t, http.MethodGet, a.url+"/metrics", "").body)
	uuidRE := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	for _, bad := range []string{id, missing, e.ns, "secret-name", "client-chosen-path", "after="} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics contains %q", bad)
		}
	}
	if m := uuidRE.FindString(body); m != "" {
		t.Errorf("/metrics contains a UUID %s", m)
	}
}

// TestHealthReadyMetrics checks /healthz, /readyz and /metrics.
func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	wantStatus(t, do(t, http.MethodGet, a.url+"/healthz", ""), http.StatusOK)

	resp := do(t, http.MethodGet, a.url+"/readyz", "")
	wantStatus(t, resp, http.StatusOK)
	var rd Readiness
	if err := json.Unmarshal(resp.body, &rd); err != nil {
		t.Fatal(err)
	}
	if want := (Readiness{Status: "ready", Database: "up", Redis: "up", Invalidation: "up"}); rd != want {
		t.Fatalf("got %+v, want %+v", rd, want)
	}

	id, _ := a.create(t, "metered", 1)["id"].(string)
	a.version(t, id)
	a.version(t, id)
	resp = do(t, http.MethodGet, a.url+"/metrics", "")
	wantStatus(t, resp, http.StatusOK)
	body := string(resp.body)
	for _, want := range []string{
		`productsd_db_queries_total{op="get"} 1`,
		`productsd_db_queries_total{op="create"} 1`,
		`productsd_db_queries_total{op="seed"} 0`,
		`productsd_http_request_duration_seconds_bucket{method="GET",route="/products/:id",status="200",le="+Inf"} 2`,
		`productsd_http_request_duration_seconds_count{method="POST",route="/products",status="201"} 1`,
		`productsd_db_pool_total_conns `,
		`productsd_db_pool_acquires_total `,
		`productsd_cache_info{mode="tiered",replica="a"} 1`,
		`tiercache_hits_total{tier="l1"} 1`,
		`tiercache_l1_max_age_seconds 30`,
		`tiercache_channel_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// TestListPages pages through the list by next_after.
func TestListPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	var ids []string
	for i := range 5 {
		ids = append(ids, a.create(t, "p"+string(rune('a'+i)), int64(i))["id"].(string))
	}
	after := ""
	var got []string
	for page := 0; ; page++ {
		q := "?limit=2"
		if after != "" {
			q += "&after=" + after
		}
		resp := do(t, http.MethodGet, a.url+"/products"+q, "")
		wantStatus(t, resp, http.StatusOK)
		var pg struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			NextAfter *string `json:"next_after"`
		}
		if err := json.Unmarshal(resp.body, &pg); err != nil {
			t.Fatal(err)
		}
		for _, it := range pg.Items {
			got = append(got, it.ID)
		}
		if pg.NextAfter == nil {
			if page != 2 || len(pg.Items) != 1 {
				t.Fatalf("last page %d has %d items, want page 2 with 1", page, len(pg.Items))
			}
			break
		}
		if len(pg.Items) != 2 || *pg.NextAfter != pg.Items[1].ID {
			t.Fatalf("page %d: got %s", page, resp.body)
		}
		after = *pg.NextAfter
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("got %v, want %v (ordered by id, UUIDv7 so by creation)", got, ids)
	}
	if n := len(a.listIDs(t, "")); n != 5 {
		t.Fatalf("default page: got %d items, want 5", n)
	}
	if n := len(a.listIDs(t, "?limit=200&after="+ids[3])); n != 1 {
		t.Fatalf("after the 4th: got %d items, want 1", n)
	}
	resp := do(t, http.MethodGet, a.url+"/products?limit=1&after="+ids[4], "")
	if string(resp.body) != `{"items":[],"next_after":null}` {
		t.Fatalf("past the end: got %s", resp.body)
	}
}

// TestCacheModes checks the Cache-Status of a database read and of the
// next read in every mode.
func TestCacheModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode        string
		first, next string
	}{
		{"tiered", wantDB, wantL1Hit},
		{"redis", "productsd-l2; fwd=miss; stored", "productsd-l2; hit"},
		{"local", "productsd-l1; fwd=miss; stored", wantL1Hit},
		{"none", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := e.replica("a", tt.mode)
			id, _ := a.create(t, "moded", 5)["id"].(string)
			for i, want := range []string{tt.first, tt.next} {
				resp := do(t, http.MethodGet, a.url+"/products/"+id, "")
				wantStatus(t, resp, http.StatusOK)
				got, present := resp.Header["Cache-Status"]
				if want == "" && present || want != "" && (len(got) != 1 || got[0] != want) {
					t.Fatalf("GET %d: got Cache-Status %q, want %q", i, got, want)
				}
			}
			wantGets := uint64(1)
			if tt.mode == "none" {
				wantGets = 2
			}
			if n := a.store.Queries("get"); n != wantGets {
				t.Fatalf("got %d database reads, want %d", n, wantGets)
			}
			// Writes are seen at once on the writing replica in every mode.
			wantStatus(t, do(t, http.MethodPut, a.url+"/products/"+id, `{"name":"x","price_cents":6}`), http.StatusOK)
			if v := a.version(t, id); v != 2 {
				t.Fatalf("after PUT: got version %d, want 2", v)
			}
			var rd Readiness
			_ = json.Unmarshal(do(t, http.MethodGet, a.url+"/readyz", "").body, &rd)
			if (tt.mode == "local" || tt.mode == "none") && (rd.Redis != "disabled" || rd.Invalidation != "disabled") {
				t.Fatalf("readyz: got %+v, want redis and invalidation disabled", rd)
			}
		})
	}
}

// TestCacheStatusCollapsed stages the two kinds of waiting with the store's
// afterGet hook: callers in one replica that share a load, and a replica
// that waits on another's lease.
func TestCacheStatusCollapsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")
	id, _ := a.create(t, "hot", 1)["id"].(string)

	entered, release := make(chan struct{}), make(chan struct{})
	a.store.afterGet = func(uuid.UUID) {
		entered <- struct{}{}
		<-release
	}
	type result struct{ status string }
	get := func(url string) result {
		code, h, _, err := fetch(url)
		if err != nil || code != http.StatusOK {
			return result{fmt.Sprintf("failed: %d %v", code, err)}
		}
		return result{h.Get("Cache-Status")}
	}
	leader := make(chan result, 1)
	go func() { leader <- get(a.url + "/products/" + id) }()
	<-entered // a's load holds the lease and is paused after its read

	// Followers on a: they miss L1 and join the paused load.
	const followers = 10
	missesBefore := a.cache.Stats().L1Misses
	onA := make(chan result, followers)
	for range followers {
		go func() { onA <- get(a.url + "/products/" + id) }()
	}
	waitFor(t, 5*time.Second, "followers to miss L1", func() bool {
		return a.cache.Stats().L1Misses >= missesBefore+followers
	})
	// b: finds a's lease and waits for the value to appear in L2.
	onB := make(chan result, 1)
	go func() { onB <- get(b.url + "/products/" + id) }()
	waitFor(t, 5*time.Second, "b to wait on a's lease", func() bool { return b.cache.Stats().LeaseWaits >= 1 })
	a.store.afterGet = nil
	close(release)

	if got := (<-leader).status; got != wantDB {
		t.Fatalf("leader: got %q, want %q", got, wantDB)
	}
	collapsed := 0
	for range followers {
		switch got := (<-onA).status; got {
		case wantDB + "; collapsed":
			collapsed++
		case wantL1Hit: // arrived after the fill; possible but rare
		default:
			t.Fatalf("follower: got %q", got)
		}
	}
	if collapsed == 0 {
		t.Fatalf("no follower reported collapsed")
	}
	if got, want := (<-onB).status, "productsd-l2; hit; collapsed, productsd-l1; fwd=miss; stored"; got != want {
		t.Fatalf("b: got %q, want %q", got, want)
	}
	if n := gets(a, b); n != 1 {
		t.Fatalf("got %d database reads, want 1", n)
	}
}

// TestNegativeEntryInvalidatedOnCreate: a "not found" cached on two
// replicas is dropped when a product with that id is created.
func TestNegativeEntryInvalidatedOnCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")
	id := uuid.Must(uuid.NewV7())
	for _, r := range []*replica{a, b, a, b} {
		if v := r.version(t, id.String()); v != 0 {
			t.Fatalf("got version %d, want a 404", v)
		}
	}
	if got := do(t, http.MethodGet, b.url+"/products/"+id.String(), "").Header.Get("Cache-Status"); got != wantL1Hit {
		t.Fatalf("negative entry: got Cache-Status %q, want an L1 hit", got)
	}
	a.store.newID = func() (uuid.UUID, error) { return id, nil }
	a.create(t, "late", 1)
	a.store.newID = nil
	if v := a.version(t, id.String()); v != 1 {
		t.Fatalf("writer: got version %d, want 1", v)
	}
	waitFor(t, time.Second, "b to see the created product", func() bool { return b.version(t, id.String()) == 1 })
}

// TestDatabaseUnavailable: with no database behind it a replica answers
// 503 problems and /readyz 503, and serves /healthz.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dbURL = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1"
	pool := mustPool(t, e.dbURL)
	svc := NewService(NewStore(pool), nil, nil, nil)
	srv := newTestServer(t, svc)
	id := uuid.Must(uuid.NewV7()).String()

	// Not migrated yet: 503 without touching the database.
	wantProblem(t, do(t, http.MethodGet, srv+"/products/"+id, ""), http.StatusServiceUnavailable)
	// Marked ready but unreachable: every database call 503s.
	svc.SetSchemaReady()
	resp := do(t, http.MethodGet, srv+"/products/"+id, "")
	wantProblem(t, resp, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	wantProblem(t, do(t, http.MethodGet, srv+"/products", ""), http.StatusServiceUnavailable)
	wantProblem(t, do(t, http.MethodPost, srv+"/products", `{"name":"x","price_cents":1}`), http.StatusServiceUnavailable)
	wantProblem(t, do(t, http.MethodPut, srv+"/products/"+id, `{"name":"x","price_cents":1}`), http.StatusServiceUnavailable)
	wantProblem(t, do(t, http.MethodDelete, srv+"/products/"+id, ""), http.StatusServiceUnavailable)
	wantStatus(t, do(t, http.MethodGet, srv+"/healthz", ""), http.StatusOK)
	resp = do(t, http.MethodGet, srv+"/readyz", "")
	wantStatus(t, resp, http.StatusServiceUnavailable)
	var rd Readiness
	if err := json.Unmarshal(resp.body, &rd); err != nil || rd.Status != "not ready" || rd.Database != "down" {
		t.Fatalf("readyz: got %s", resp.body)
	}

	// A migration against it fails, and MigrateUntilDone keeps trying until
	// its context ends.
	ctx, cancel := contextWithTimeout(300 * time.Millisecond)
	defer cancel()
	if err := svc.MigrateUntilDone(ctx); err == nil {
		t.Fatal("MigrateUntilDone against no database returned nil")
	}
}

// TestInternalErrorHidesCause: a value in Redis that cannot be decoded makes
// a 500 whose body says nothing of the cause.
func TestInternalErrorHidesCause(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "redis")
	id, _ := a.create(t, "broken", 1)["id"].(string)
	// A schema the code does not expect: the load fails with an error full
	// of internals (the column's name, SQLSTATE text).
	exec := func(sql string) {
		t.Helper()
		if _, err := a.store.pool.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("ALTER TABLE products RENAME COLUMN description TO hidden_column")
	resp := do(t, http.MethodGet, a.url+"/products/"+id, "")
	exec("ALTER TABLE products RENAME COLUMN hidden_column TO description")
	wantProblem(t, resp, http.StatusInternalServerError)
	for _, leak := range []string{"hidden_column", "description", "SQLSTATE", "products:", "tiercache"} {
		if strings.Contains(string(resp.body), leak) {
			t.Fatalf("500 body shows internal text %q: %s", leak, resp.body)
		}
	}
	// Errors are never cached: the next read heals.
	if v := a.version(t, id); v != 1 {
		t.Fatalf("after the 500: got version %d, want 1", v)
	}
}

// rule 12: an L2 value that cannot be decoded (a codec change during a
// rolling deploy) is a miss, not an error: it is replaced by a load.
func TestUndecodableL2ValueIsAMiss(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "redis")
	id, _ := a.create(t, "broken", 1)["id"].(string)
	rdbSet(t, e.ns+":v:{product:"+id+"}", "vxx")
	if v := a.version(t, id); v != 1 {
		t.Fatalf("read over an undecodable value: got version %d, want 1", v)
	}
	if s := a.cache.Stats(); s.DecodeErrors != 1 || s.Loads != 1 {
		t.Fatalf("got %d decode errors and %d loads, want 1 and 1", s.DecodeErrors, s.Loads)
	}
}
