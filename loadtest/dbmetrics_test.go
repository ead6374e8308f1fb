package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
)

func TestParseCounter(t *testing.T) {
	text := `# HELP productsd_db_queries_total Database queries.
# TYPE productsd_db_queries_total counter
productsd_db_queries_total{op="get"} 1.234567e+06
productsd_db_queries_total{replica="a,b",op="list"} 12
productsd_db_queries_total{op="seed"} 3
productsd_db_queries_total_created{op="get"} 1.7e9
productsd_db_queries_totalx 5
productsd_http_requests_total{code="200"} 99
`
	families, ok := parseMetrics([]byte(text))
	got := sumBy(families[dbCounterName], "op")
	want := map[string]float64{"get": 1234567, "list": 12, "seed": 3}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("sumBy = %v, %v; want %v", got, ok, want)
	}
	families, ok = parseMetrics([]byte("other 1\n"))
	if got := sumBy(families[dbCounterName], "op"); !ok || len(got) != 0 {
		t.Errorf("a counter that is not there: %v, %v; want none", got, ok)
	}
	if _, ok := parseMetrics([]byte("other{ 1\n")); ok {
		t.Error("text that does not parse parsed")
	}
}

// TestTargetCounters: one /metrics request gives every named counter,
// summed over its labels, 0 for one not exported; a target that answers
// badly or not in the text format gives none.
func TestTargetCounters(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	body := "a_total{x=\"1\"} 2\na_total{x=\"2\"} 3\nb_total 7\nb_total_other 100\n"
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	got, ok := TargetCounters(t.Context(), srv.Client(), srv.URL, "a_total", "b_total", "c_total")
	want := map[string]float64{"a_total": 5, "b_total": 7, "c_total": 0}
	if !ok || !reflect.DeepEqual(got, want) || requests.Load() != 1 {
		t.Errorf("TargetCounters = %v, %v after %d requests; want %v after 1", got, ok, requests.Load(), want)
	}
	body = "a_total{ 1\n"
	if got, ok := TargetCounters(t.Context(), srv.Client(), srv.URL, "a_total"); ok {
		t.Errorf("text that does not parse: %v, want false", got)
	}
	body, status = "a_total 1\n", http.StatusServiceUnavailable
	if got, ok := TargetCounters(t.Context(), srv.Client(), srv.URL, "a_total"); ok {
		t.Errorf("a 503: %v, want false", got)
	}
}

func TestDBDelta(t *testing.T) {
	before := dbSnapshot{"a": {"get": 10, "seed": 100}, "b": {"get": 5}}
	after := dbSnapshot{"a": {"get": 15, "list": 2, "seed": 200}, "b": {"get": 8}}
	got := dbDelta(before, after, 100, 2)
	if !got.Available || got.Total != 10 || got.ByOp["get"] != 8 || got.ByOp["list"] != 2 || got.ByTarget["a"] != 7 || got.PerReq != 0.1 || got.PerS != 5 {
		t.Errorf("dbDelta = %+v", got)
	}
	if got := dbDelta(before, dbSnapshot{"a": {}}, 1, 1); got.Available {
		t.Error("a target that stopped answering /metrics still counts as available")
	}
}
