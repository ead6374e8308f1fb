package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is an in-memory products API shared by several fake replicas,
// each with its own "L1". With coherent false, a write does not evict other
// replicas' L1 copies: the stale-data bug of CACHE_MODE=local on many
// replicas.
type fakeAPI struct {
	coherent bool
	// Faults: acknowledge updates without storing them, acknowledge
	// deletes without deleting, answer every n-th read with 503, delete
	// and then drop the connection without an answer (a replica killed
	// between its commit and its answer).
	loseUpdates, undoDeletes, dropDeleteAnswers bool
	fail503Every                                int
	// failSafe: a read failed by fail503Every that sent stale-if-error
	// gets the version before the product's, labelled stale instead.
	failSafe bool
	// dropLastOfBatch answers the last id of every batch as missing.
	dropLastOfBatch bool

	reads   int            // guarded by mu
	updated map[string]int // ids whose update was acknowledged; guarded by mu

	mu       sync.Mutex // guards the fields below
	products map[string]int64
	nextID   int
	queries  []map[string]int   // per replica: op -> count
	replicas []map[string]int64 // per replica: id -> cached version
	l2       map[string]int64   // shared by the replicas' batch reads; writes evict it
	// batchKeys counts the keys of batch reads by the tier that answered
	// them (indexed by Tier): what the generator must count.
	batchKeys KeyTiers
}

func newFakeAPI(t *testing.T, replicas, products int, coherent bool) (*fakeAPI, []string) {
	t.Helper()
	f := &fakeAPI{coherent: coherent, products: map[string]int64{}, updated: map[string]int{}, l2: map[string]int64{}}
	for range products {
		f.create()
	}
	var urls []string
	for i := range replicas {
		f.replicas = append(f.replicas, map[string]int64{})
		f.queries = append(f.queries, map[string]int{})
		srv := httptest.NewServer(f.handler(i))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return f, urls
}

func (f *fakeAPI) create() string {
	f.nextID++
	id := fmt.Sprintf("p%06d", f.nextID)
	f.products[id] = 1
	return id
}

func writeProduct(w http.ResponseWriter, id string, v int64, status int) {
	w.Header().Set("ETag", fmt.Sprintf(`"%d"`, v))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"id":%q,"name":"x","description":"","price_cents":1,"version":%d}`, id, v)
}

func (f *fakeAPI) handler(replica int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		f.reads++
		if f.fail503Every > 0 && f.reads%f.fail503Every == 0 && r.UserAgent() != verifyUserAgent {
			v := max(f.products[id]-1, 1)
			f.mu.Unlock()
			if f.failSafe && strings.HasPrefix(r.Header.Get("Cache-Control"), "stale-if-error=") {
				w.Header().Set("Cache-Status", `productsd-failsafe; hit; ttl=-3; detail="db-error"`)
				w.Header().Set("Age", "3")
				writeProduct(w, id, v, http.StatusOK)
				return
			}
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		l1 := f.replicas[replica]
		v, hit := l1[id]
		if !hit {
			var ok bool
			if v, ok = f.products[id]; !ok {
				f.mu.Unlock()
				http.NotFound(w, r)
				return
			}
			if r.UserAgent() != verifyUserAgent { // the run's figures end before the check
				f.queries[replica]["get"]++
			}
			l1[id] = v
		}
		f.mu.Unlock()
		if hit {
			w.Header().Set("Cache-Status", "productsd-l1; hit")
		} else {
			w.Header().Set("Cache-Status", "productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored")
		}
		writeProduct(w, id, v, http.StatusOK)
	})
	mux.HandleFunc("PUT /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		f.mu.Lock()
		f.queries[replica]["update"]++
		v := f.products[id] + 1
		f.updated[id]++
		if f.loseUpdates {
			v += int64(f.updated[id]) - 1 // what it would be had the earlier ones been kept
		} else {
			f.products[id] = v
		}
		for i, l1 := range f.replicas {
			if f.coherent || i == replica {
				delete(l1, id)
			}
		}
		delete(f.l2, id)
		f.mu.Unlock()
		writeProduct(w, id, v, http.StatusOK)
	})
	mux.HandleFunc("POST /products", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries[replica]["create"]++
		id := f.create()
		f.mu.Unlock()
		writeProduct(w, id, 1, http.StatusCreated)
	})
	mux.HandleFunc("DELETE /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries[replica]["delete"]++
		if !f.undoDeletes {
			delete(f.products, r.PathValue("id"))
			delete(f.l2, r.PathValue("id"))
		}
		f.mu.Unlock()
		if f.dropDeleteAnswers {
			panic(http.ErrAbortHandler) // the connection closes, no answer
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		if ids := r.URL.Query().Get("ids"); ids != "" {
			f.serveBatch(w, replica, strings.Split(ids, ","))
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		after := r.URL.Query().Get("after")
		f.mu.Lock()
		f.queries[replica]["list"]++
		var ids []string
		for id := range f.products {
			if id > after {
				ids = append(ids, id)
			}
		}
		f.mu.Unlock()
		sort.Strings(ids)
		var next any
		if len(ids) > limit {
			ids = ids[:limit]
			next = ids[limit-1]
		}
		items := make([]map[string]any, len(ids))
		for i, id := range ids {
			items[i] = map[string]any{"id": id, "version": 1}
		}
		w.Header().Set("Cache-Status", "productsd-l1; hit")
		json.NewEncoder(w).Encode(map[string]any{"items": items, "next_after": next})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		fmt.Fprintln(w, "# TYPE productsd_db_queries_total counter")
		for op, n := range f.queries[replica] {
			fmt.Fprintf(w, "productsd_db_queries_total{op=%q} %d\n", op, n)
		}
	})
	return mux
}

// serveBatch answers GET /products?ids= as productsd does: L1, then the
// shared L2, then one query for the rest, with the batch Cache-Status
// (a member per tier asked, detail="<hits>/<keys asked>").
func (f *fakeAPI) serveBatch(w http.ResponseWriter, replica int, ids []string) {
	f.mu.Lock()
	l1 := f.replicas[replica]
	var hits KeyTiers
	items, missing := []map[string]any{}, []string{}
	for i, id := range ids {
		v, ok := l1[id]
		switch {
		case ok:
			hits[TierL1]++
		default:
			if v, ok = f.l2[id]; ok {
				hits[TierL2]++
			} else if v, ok = f.products[id]; ok {
				f.l2[id] = v
			}
			if ok {
				l1[id] = v
			}
		}
		if !ok || f.dropLastOfBatch && i == len(ids)-1 {
			missing = append(missing, id)
			continue
		}
		items = append(items, map[string]any{"id": id, "version": v})
	}
	hits[TierOrigin] = int64(len(ids)) - hits[TierL1] - hits[TierL2]
	if hits[TierOrigin] > 0 {
		f.queries[replica]["get"]++
	}
	for t, n := range hits {
		f.batchKeys[t] += n
	}
	f.mu.Unlock()
	member := func(name string, hit, asked int64) string {
		m := name + "; fwd=miss"
		if hit == asked {
			m = name + "; hit"
		}
		return fmt.Sprintf(`%s; detail="%d/%d"`, m, hit, asked)
	}
	status := member("productsd-l1", hits[TierL1], int64(len(ids)))
	if l2asked := int64(len(ids)) - hits[TierL1]; l2asked > 0 {
		status = member("productsd-l2", hits[TierL2], l2asked) + ", " + status
	}
	w.Header().Set("Cache-Status", status)
	json.NewEncoder(w).Encode(map[string]any{"items": items, "missing": missing})
}

func (f *fakeAPI) totalQueries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.queries {
		for _, c := range q {
			n += c
		}
	}
	return n
}

func TestListIDsPages(t *testing.T) {
	_, urls := newFakeAPI(t, 1, 30, true)
	ids, err := ListIDs(t.Context(), http.DefaultClient, urls[0], 100, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 30 || ids[0] != "p000001" || ids[29] != "p000030" {
		t.Errorf("got %d ids (%v...), want p000001..p000030", len(ids), ids[:min(3, len(ids))])
	}
	ids, _ = ListIDs(t.Context(), http.DefaultClient, urls[0], 10, 7)
	if len(ids) != 14 { // stops after the page that reaches n
		t.Errorf("got %d ids, want 14", len(ids))
	}
	if !strings.HasPrefix(ids[0], "p") {
		t.Errorf("bad id %q", ids[0])
	}
}
