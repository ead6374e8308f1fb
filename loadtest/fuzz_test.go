package loadtest

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseCacheStatus feeds arbitrary header values to the Cache-Status
// parser: it never panics, every member it returns has a name and well
// formed parameter keys, and the memoised classification agrees with a
// fresh one.
func FuzzParseCacheStatus(f *testing.F) {
	for _, s := range []string{
		"productsd-l1; hit",
		"productsd-l2; hit, productsd-l1; fwd=miss; stored",
		"productsd-l2; fwd=miss; stored; collapsed, productsd-l1; fwd=miss; collapsed",
		`"productsd-l1"; hit; ttl=30; key="product:1"`,
		"productsd-l1; fwd=uri-miss, (a b); x",
		"productsd-l1; hit,", "productsd-l1; HIT", "productsd-l1; ttl=\"x", `a; k="\"\\"`,
		"a;b=?0;c=-1.5;d=*x;e=:aGk=:", "", " ", ",", "();a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var memo statusMemo
		members, err := ParseCacheStatus(v)
		if err != nil {
			if got := memo.classify(v); got != (CacheStatus{}) {
				t.Fatalf("%q: malformed but classified as %+v", v, got)
			}
			return
		}
		for _, m := range members {
			if m.Name == "" {
				t.Fatalf("%q: a member without a name: %+v", v, members)
			}
			for k := range m.Params {
				if k == "" || !(k[0] >= 'a' && k[0] <= 'z' || k[0] == '*') || strings.ToLower(k) != k {
					t.Fatalf("%q: parameter key %q", v, k)
				}
			}
		}
		if got, want := memo.classify(v), ClassifyCacheStatus(members); got != want {
			t.Fatalf("%q: memoised %+v, fresh %+v", v, got, want)
		}
	})
}

// FuzzParseThreshold feeds arbitrary expressions to the threshold parser:
// whatever it accepts names a known metric, tag and operator with a real
// number, and parses again from its Source to the same threshold.
func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{
		"http_req_duration: p(99)<5ms", "http_req_duration{type:get}: p(95)<10ms",
		`cache_hit_ratio{tier="l1"}>0.9`, "stale_reads==0", "http_req_failed<0.001", "checks>99%",
		"staleness: max<=50ms", "db_queries: per_req<0.1", "http_reqs: rate>=1e3", "lost_writes==0",
		"http_req_duration: p(100.5)<1s", "http_req_duration{type:get,type:list}<1", "x<1", "{}:<",
		"http_req_duration: p( 50 )<1m", "iterations: value>-1e-3", "http_req_failed{type}<1",
	} {
		f.Add(s)
	}
	ops := map[string]bool{"<": true, "<=": true, ">": true, ">=": true, "==": true, "!=": true}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThreshold(s)
		if err != nil {
			return
		}
		def, ok := metricDefs[th.Metric]
		if !ok || !ops[th.Op] || math.IsNaN(th.Value) || math.IsInf(th.Value, 0) {
			t.Fatalf("%q: accepted %+v", s, th)
		}
		if th.Agg == "p" && (th.P < 0 || th.P > 100) || th.Agg != "p" && !contains(def.aggs, th.Agg) {
			t.Fatalf("%q: accepted aggregation %q (p %v)", s, th.Agg, th.P)
		}
		for k := range th.Tags {
			if !contains(def.tags, k) {
				t.Fatalf("%q: accepted tag %q", s, k)
			}
		}
		again, err := ParseThreshold(th.Source)
		if err != nil || !reflect.DeepEqual(again, th) {
			t.Fatalf("%q: reparsed from %q as %+v, %v; first %+v", s, th.Source, again, err, th)
		}
	})
}
