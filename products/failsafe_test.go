package products

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/internal/tcpproxy"
	"github.com/tiercache/productcache/internal/testenv"
)

func TestStaleIfErrorDirective(t *testing.T) {
	for _, tt := range []struct {
		lines []string
		want  time.Duration
		ok    bool
	}{
		{nil, 0, false},
		{[]string{"stale-if-error=60"}, 60 * time.Second, true},
		{[]string{"max-age=0, Stale-If-Error=5"}, 5 * time.Second, true},
		{[]string{`no-cache, ext="a,stale-if-error=9", stale-if-error="7"`}, 7 * time.Second, true},
		{[]string{"max-age=0", "stale-if-error=3"}, 3 * time.Second, true},
		{[]string{"stale-if-error=0"}, 0, true},
		{[]string{"stale-if-error=99999999999999999999"}, maxDeltaSeconds * time.Second, true},
		{[]string{"stale-if-error"}, 0, false},
		{[]string{"stale-if-error="}, 0, false},
		{[]string{"stale-if-error=-5"}, 0, false},
		{[]string{"stale-if-error=1.5"}, 0, false},
		{[]string{"stale-if-error=abc"}, 0, false},
		{[]string{"stale-if-error=5, stale-if-error=6"}, 0, false}, // duplicate: invalid
		{[]string{"stale-while-revalidate=5"}, 0, false},
	} {
		got, ok := staleIfError(tt.lines)
		if got != tt.want || ok != tt.ok {
			t.Errorf("staleIfError(%q) = %v, %v; want %v, %v", tt.lines, got, ok, tt.want, tt.ok)
		}
	}
}

// proxiedReplica starts a tiered replica whose database connections go
// through a proxy the test can cut or slow down.
func proxiedReplica(t *testing.T) (*replica, *tcpproxy.Proxy) {
	t.Helper()
	e := newEnv(t)
	u, err := url.Parse(e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tcpproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	u.Host = p.Addr()
	pe := *e
	pe.dbURL = u.String()
	return pe.replica("a", "tiered"), p
}

// staleSetup creates a product, reads it once through r (its load fills
// the fail-safe copy), evicts it from L1 and L2, and cuts the database.
// It returns the id and when the loading read was answered.
func staleSetup(t *testing.T, r *replica, p *tcpproxy.Proxy) (string, time.Time) {
	t.Helper()
	id := r.create(t, "kept", 100)["id"].(string)
	wantStatus(t, do(t, http.MethodGet, r.url+"/products/"+id, ""), http.StatusOK)
	loaded := time.Now()
	evict(t, r, id)
	p.SetCut(true)
	return id, loaded
}

func evict(t *testing.T, r *replica, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.cache.Invalidate(ctx, "product:"+id); err != nil {
		t.Fatalf("invalidate: %v", err)
	}
}

// wantStale fails t unless resp is a 200 from the fail-safe store with
// detail, an Age of at least minAge and at most maxAge seconds, and a
// matching negative ttl; it returns the body's price.
func wantStale(t *testing.T, resp response, detail string, minAge, maxAge int64) float64 {
	t.Helper()
	wantStatus(t, resp, http.StatusOK)
	age, err := strconv.ParseInt(resp.Header.Get("Age"), 10, 64)
	if err != nil || age < minAge || age > maxAge {
		t.Fatalf("Age %q, want %d..%d seconds", resp.Header.Get("Age"), minAge, maxAge)
	}
	want := statusFailSafe + "; hit; ttl=-" + strconv.FormatInt(age, 10) + `; detail="` + detail + `"`
	if got := resp.Header.Get("Cache-Status"); got != want {
		t.Fatalf("Cache-Status %q, want %q", got, want)
	}
	return resp.json(t)["price_cents"].(float64)
}

// wantUnavailable fails t unless resp is a 503 that does not claim to be
// stale.
func wantUnavailable(t *testing.T, resp response) {
	t.Helper()
	wantProblem(t, resp, http.StatusServiceUnavailable)
	wantNotStale(t, resp)
}

func wantNotStale(t *testing.T, resp response) {
	t.Helper()
	if resp.Header.Get("Age") != "" || strings.Contains(resp.Header.Get("Cache-Status"), statusFailSafe) {
		t.Fatalf("%d with Age %q, Cache-Status %q", resp.StatusCode, resp.Header.Get("Age"), resp.Header.Get("Cache-Status"))
	}
}

// TestStaleIfErrorServesLabelledCopy: with the database cut, a read with
// stale-if-error gets the last loaded value with Age and the fail-safe
// Cache-Status; a read without it gets a 503.
func TestStaleIfErrorServesLabelledCopy(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	id, _ := staleSetup(t, r, p)
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, ""))
	if got := wantStale(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "max-age=0, stale-if-error=60"), "db-error", 1, 60); got != 100 {
		t.Fatalf("stale price %v, want 100", got)
	}
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=bogus"))
	p.SetCut(false)
	resp := do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=60")
	wantStatus(t, resp, http.StatusOK)
	wantNotStale(t, resp)
}

// TestStaleIfErrorAllowanceBoundsAge: a copy older than the request's
// allowance is a 503; a larger allowance gets it, with its true age.
func TestStaleIfErrorAllowanceBoundsAge(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	id, loaded := staleSetup(t, r, p)
	// The copy is stamped when its load began, before loaded: once past
	// loaded+1s it is more than 1 s old.
	time.Sleep(time.Until(loaded.Add(1100 * time.Millisecond)))
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=1"))
	wantStale(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=60"), "db-error", 2, 60)
}

// TestStaleIfErrorAfterWrite: a write, then the database fails: a read
// that did not opt in never gets the superseded version, an opted-in one
// gets it labelled stale.
func TestStaleIfErrorAfterWrite(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	id := r.create(t, "kept", 100)["id"].(string)
	wantStatus(t, do(t, http.MethodGet, r.url+"/products/"+id, ""), http.StatusOK)
	r.put(t, id, `{"name":"kept","price_cents":200}`)
	p.SetCut(true)
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, ""))
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=0"))
	if got := wantStale(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=60"), "db-error", 1, 60); got != 100 {
		t.Fatalf("stale price %v, want the superseded 100", got)
	}
}

// TestStaleIfErrorServerDefault: the server's default allowance applies to
// requests without the directive; stale-if-error=0 turns it off.
func TestStaleIfErrorServerDefault(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	r.svc.SetFailSafe(time.Minute, 0)
	id, _ := staleSetup(t, r, p)
	wantStale(t, do(t, http.MethodGet, r.url+"/products/"+id, ""), "db-error", 1, 60)
	wantUnavailable(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=0"))
}

// TestSoftTimeoutServesCopy: a database slower than the soft timeout gets
// an opted-in read the copy, labelled db-timeout, long before the load
// could finish.
func TestSoftTimeoutServesCopy(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	r.svc.SetFailSafe(0, 100*time.Millisecond)
	id := r.create(t, "kept", 100)["id"].(string)
	wantStatus(t, do(t, http.MethodGet, r.url+"/products/"+id, ""), http.StatusOK)
	evict(t, r, id)
	p.SetLatency(2 * time.Second) // each way: a query takes at least 4 s
	start := time.Now()
	wantStale(t, do(t, http.MethodGet, r.url+"/products/"+id, "", "Cache-Control", "stale-if-error=60"), "db-timeout", 1, 60)
	if d := time.Since(start); d >= 4*time.Second {
		t.Fatalf("answered after %v, not before the load's 4 s", d)
	}
}

// docs/design.md §3.16 and §4 for batches: with the database cut, a batch
// with stale-if-error gets the copies its earlier batch load left, listed
// in "stale" with their ages, a fail-safe member in Cache-Status and an Age;
// without it, or with a key that has no copy, the batch is a 503.
func TestBatchStaleIfError(t *testing.T) {
	t.Parallel()
	r, p := proxiedReplica(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, r.create(t, "batch-kept", int64(100+i))["id"].(string))
	}
	if b, _ := getBatch(t, r, ids[0], ids[1]); len(b.Items) != 2 { // the batch load leaves the copies
		t.Fatalf("first batch: %+v", b)
	}
	for _, id := range ids {
		evict(t, r, id)
	}
	p.SetCut(true)
	url := r.url + "/products?ids=" + ids[0] + "," + ids[1]
	wantUnavailable(t, do(t, http.MethodGet, url, ""))
	resp := do(t, http.MethodGet, url, "", "Cache-Control", "stale-if-error=60")
	wantStatus(t, resp, http.StatusOK)
	age, err := strconv.ParseInt(resp.Header.Get("Age"), 10, 64)
	if err != nil || age < 1 || age > 60 {
		t.Fatalf("Age %q, want 1..60", resp.Header.Get("Age"))
	}
	want := statusFailSafe + "; hit; ttl=-" + strconv.FormatInt(age, 10) + `; detail="2/2", ` +
		statusL2 + `; fwd=miss; detail="0/2", ` + statusL1 + `; fwd=miss; detail="0/2"`
	if got := resp.Header.Get("Cache-Status"); got != want {
		t.Fatalf("Cache-Status %q, want %q", got, want)
	}
	var b struct {
		Items []struct {
			ID    string `json:"id"`
			Price int64  `json:"price_cents"`
		} `json:"items"`
		Stale []struct {
			ID     string `json:"id"`
			Age    int64  `json:"age"`
			Reason string `json:"reason"`
		} `json:"stale"`
	}
	if err := json.Unmarshal(resp.body, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Items) != 2 || b.Items[0].ID != ids[0] || b.Items[0].Price != 100 || b.Items[1].ID != ids[1] ||
		len(b.Stale) != 2 || b.Stale[0].ID != ids[0] || b.Stale[1].ID != ids[1] ||
		b.Stale[0].Age < 1 || b.Stale[0].Age > age || b.Stale[1].Reason != "db-error" {
		t.Fatalf("stale batch %s", resp.body)
	}
	wantUnavailable(t, do(t, http.MethodGet, url+","+ids[2], "", "Cache-Control", "stale-if-error=60")) // no copy of ids[2]
	p.SetCut(false)
	resp = do(t, http.MethodGet, url, "", "Cache-Control", "stale-if-error=60")
	wantStatus(t, resp, http.StatusOK)
	wantNotStale(t, resp)
	if strings.Contains(string(resp.body), `"stale"`) {
		t.Fatalf("fresh batch lists stale items: %s", resp.body)
	}
}

// A database that refuses connections (here closed with ALLOW_CONNECTIONS
// false, SQLSTATE 55000 at connect time) is an outage: 503 and, for reads
// that opted in, the fail-safe, never a 500.
func TestRefusedConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := testenv.DatabaseURL()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Skipf("PostgreSQL: %v", err)
	}
	defer admin.Close(context.Background())
	name := testenv.Unique("products_closed")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" WITH ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	_, err = pgx.Connect(ctx, u.String())
	if err == nil || !errors.Is(dbError("get", err), ErrUnavailable) {
		t.Fatalf("connect to a closed database: %v; dbError %v, want ErrUnavailable", err, dbError("get", err))
	}
}
