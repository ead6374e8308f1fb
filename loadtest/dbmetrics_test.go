package loadtest

import (
	"reflect"
	"strings"
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
	got, ok := parseCounter(strings.NewReader(text), dbCounterName, "op")
	want := map[string]float64{"get": 1234567, "list": 12, "seed": 3}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("parseCounter = %v, %v; want %v", got, ok, want)
	}
	if _, ok := parseCounter(strings.NewReader("other 1\n"), dbCounterName, "op"); ok {
		t.Error("found a counter that is not there")
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
