package products

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

type batchBody struct {
	Items   []map[string]any `json:"items"`
	Missing []string         `json:"missing"`
}

func getBatch(t *testing.T, r *replica, ids ...string) (batchBody, string) {
	t.Helper()
	resp := do(t, http.MethodGet, r.url+"/products?ids="+strings.Join(ids, ","), "")
	wantStatus(t, resp, http.StatusOK)
	var b batchBody
	if err := json.Unmarshal(resp.body, &b); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	return b, resp.Header.Get("Cache-Status")
}

// docs/design.md §3.17 and §4: items in the order asked, duplicates once,
// unknown ids in missing, one database query for all the misses, then the
// tiers answer.
func TestBatchGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")
	var ids []string
	for i := range 5 {
		ids = append(ids, a.create(t, "p"+string(rune('0'+i)), int64(i))["id"].(string))
	}
	unknown := uuid.New().String()
	asked := []string{ids[3], ids[0], unknown, strings.ToUpper(ids[3]), ids[4], ids[1], ids[2]}
	before := gets(b)
	body, status := getBatch(t, b, asked...)
	if n := gets(b) - before; n != 1 {
		t.Fatalf("%d database queries for the batch, want 1", n)
	}
	want := []string{ids[3], ids[0], ids[4], ids[1], ids[2]}
	if len(body.Items) != len(want) {
		t.Fatalf("got %d items, want %d: %+v", len(body.Items), len(want), body)
	}
	for i, id := range want {
		if body.Items[i]["id"] != id {
			t.Fatalf("item %d: %v, want %s", i, body.Items[i]["id"], id)
		}
	}
	if len(body.Missing) != 1 || body.Missing[0] != unknown {
		t.Fatalf("missing %v, want [%s]", body.Missing, unknown)
	}
	if want := `productsd-l2; fwd=miss; stored; detail="0/6", productsd-l1; fwd=miss; stored; detail="0/6"`; status != want {
		t.Fatalf("Cache-Status %q, want %q", status, want)
	}
	// Again: all from L1, no query. On a starved machine the replica's
	// freshness lease may lapse between the two batches, and a lapsed
	// replica (rightly) reads L2 instead of L1 (docs/design.md §3.13), so
	// the batch is asked until L1 answers; no answer may reach the database.
	waitFor(t, 10*time.Second, "b to answer the batch from L1", func() bool {
		_, status = getBatch(t, b, asked...)
		if gets(b) != before+1 {
			t.Fatalf("second batch: %q, %d queries; want none", status, gets(b)-before-1)
		}
		return status == `productsd-l1; hit; detail="6/6"`
	})
	_, status = getBatch(t, a, ids[0], ids[1], unknown)
	if want := `productsd-l2; hit; detail="3/3", productsd-l1; fwd=miss; stored; detail="0/3"`; status != want || gets(a) != 0 {
		t.Fatalf("batch on a: %q, %d queries; want %q and none", status, gets(a), want)
	}
}

// docs/design.md §4: a malformed id is a 400 naming it; no ids, or more than
// 100, is a 400.
func TestBatchGetBadIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	good := uuid.New().String()
	resp := do(t, http.MethodGet, a.url+"/products?ids="+good+",not-a-uuid", "")
	wantProblem(t, resp, http.StatusBadRequest)
	if !strings.Contains(string(resp.body), `not-a-uuid`) {
		t.Fatalf("the problem does not name the id: %s", resp.body)
	}
	wantProblem(t, do(t, http.MethodGet, a.url+"/products?ids=", ""), http.StatusBadRequest)
	many := make([]string, MaxBatch+1)
	for i := range many {
		many[i] = uuid.New().String()
	}
	wantProblem(t, do(t, http.MethodGet, a.url+"/products?ids="+strings.Join(many, ","), ""), http.StatusBadRequest)
	wantStatus(t, do(t, http.MethodGet, a.url+"/products?ids="+strings.Join(many[:MaxBatch], ","), ""), http.StatusOK)
	if gets(a) != 1 {
		t.Fatalf("%d queries, want 1 (the 100-id batch)", gets(a))
	}
}
