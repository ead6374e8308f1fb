package loadtest

import (
	"math"
	"reflect"
	"testing"
)

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in   string
		want Threshold
	}{
		{"http_req_duration: p(99)<5ms", Threshold{Metric: "http_req_duration", Agg: "p", P: 99, Op: "<", Value: 5}},
		{"http_req_duration{type:get}: p(95)<10ms", Threshold{Metric: "http_req_duration", Tags: map[string]string{"type": "get"}, Agg: "p", P: 95, Op: "<", Value: 10}},
		{"http_req_duration: p(99.9) <= 1.5s", Threshold{Metric: "http_req_duration", Agg: "p", P: 99.9, Op: "<=", Value: 1500}},
		{"http_req_duration: avg<500us", Threshold{Metric: "http_req_duration", Agg: "avg", Op: "<", Value: 0.5}},
		{`cache_hit_ratio{tier="l1"}>0.9`, Threshold{Metric: "cache_hit_ratio", Tags: map[string]string{"tier": "l1"}, Agg: "rate", Op: ">", Value: 0.9}},
		{`cache_hit_ratio{tier="l1", type="get"} > 90%`, Threshold{Metric: "cache_hit_ratio", Tags: map[string]string{"tier": "l1", "type": "get"}, Agg: "rate", Op: ">", Value: 0.9}},
		{"stale_reads==0", Threshold{Metric: "stale_reads", Agg: "count", Op: "==", Value: 0}},
		{"stale_reads: count==0", Threshold{Metric: "stale_reads", Agg: "count", Op: "==", Value: 0}},
		{"http_req_failed<0.001", Threshold{Metric: "http_req_failed", Agg: "rate", Op: "<", Value: 0.001}},
		{"checks>0.99", Threshold{Metric: "checks", Agg: "rate", Op: ">", Value: 0.99}},
		{"checks: rate>=0.99", Threshold{Metric: "checks", Agg: "rate", Op: ">=", Value: 0.99}},
		{"db_queries: per_req<0.05", Threshold{Metric: "db_queries", Agg: "per_req", Op: "<", Value: 0.05}},
		{"http_reqs: rate>1000", Threshold{Metric: "http_reqs", Agg: "rate", Op: ">", Value: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseThreshold(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Source = tt.in
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseThresholdErrors(t *testing.T) {
	for _, in := range []string{
		"http_req_duration<5ms",             // a trend needs an aggregation
		"http_req_duration: p(101)<5ms",     // no such percentile
		"latency: p(99)<5ms",                // unknown metric
		"checks{type:get}>0.9",              // checks has no tags
		"http_req_failed: p(99)<1",          // not a trend
		"http_req_failed<5ms",               // unit on a rate
		"http_req_duration: p(99)<5 parsec", // unknown unit
		"stale_reads=0",                     // = is not an operator
		"",
	} {
		if _, err := ParseThreshold(in); err == nil {
			t.Errorf("ParseThreshold(%q) succeeded, want an error", in)
		}
	}
}

func TestEvaluateThresholds(t *testing.T) {
	s := &Summary{
		DurationS: 10, Requests: 1000, Failed: 1, FailRate: 0.001,
		Latency: Percentiles{Count: 1000, Avg: 1, Med: 0.8, P95: 3, P99: 4.5, Max: 9},
		Types: map[string]TypeSummary{
			"get": {Requests: 900, Latency: Percentiles{Count: 900, P95: 2}, Cache: &HitRatios{L1: 0.95, L2: 0.04, Origin: 0.01}},
		},
		Cache:       HitRatios{L1: 0.93, L2: 0.05, Origin: 0.02},
		Checks:      CheckResult{Rate: 0.999},
		Consistency: ProbeResult{StaleReads: 0, ReadsAfterWrite: 10},
		DB:          DBQueries{Total: 20, PerReq: 0.02},
	}
	tests := []struct {
		in     string
		ok     bool
		actual float64
	}{
		{"http_req_duration: p(99)<5ms", true, 4.5},
		{"http_req_duration: p(99)<4ms", false, 4.5},
		{"http_req_duration{type:get}: p(95)<10ms", true, 2},
		{"http_req_duration{type:delete}: p(95)<10ms", true, 0}, // no data
		{`cache_hit_ratio{tier="l1"}>0.9`, true, 0.93},
		{`cache_hit_ratio{tier="l1",type="get"}>0.96`, false, 0.95},
		{`cache_hit_ratio{tier="hit"}>0.97`, true, 0.98},
		{"stale_reads==0", true, 0},
		{"http_req_failed<0.001", false, 0.001},
		{"checks>0.99", true, 0.999},
		{"http_reqs: rate>=100", true, 100},
		{"db_queries: count<=20", true, 20},
	}
	for _, tt := range tests {
		th, err := ParseThreshold(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if ok := s.Evaluate([]Threshold{th}); ok != tt.ok || math.Abs(s.Thresholds[0].Actual-tt.actual) > 1e-9 {
			t.Errorf("%s: ok=%v actual=%v, want %v %v", tt.in, ok, s.Thresholds[0].Actual, tt.ok, tt.actual)
		}
	}
	all, err := ParseThresholds(map[string][]string{"checks": {">0.99"}, "http_req_failed": {"rate<0.01", "rate<0.0001"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Evaluate(all) || len(s.Thresholds) != 3 || s.ThresholdsOK {
		t.Errorf("one failing threshold of three: ok=%v results=%+v", s.ThresholdsOK, s.Thresholds)
	}
}
