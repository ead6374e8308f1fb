package compare

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tiercache/productcache/loadtest"
)

func summary(rps, p50, cpuTotal float64, complete bool, failRate float64) *loadtest.Summary {
	s := &loadtest.Summary{RPS: rps, FailRate: failRate}
	s.Latency.Med = p50
	s.CPU.Complete, s.CPU.TotalUSPerReq = complete, cpuTotal
	return s
}

func testResult() *Result {
	return &Result{Rows: []Row{
		{Target: Target{Name: "redis", Replicas: 3}, Summary: summary(1000, 3, 100, true, 0)},
		{Target: Target{Name: "tiered", Replicas: 3}, Summary: summary(2500, 0.5, 40, true, 0.02)},
		{Target: Target{Name: "static", Replicas: 3}, Summary: summary(3000, 0.4, 0, false, 0)},
	}}
}

// TestEvaluate: ratios between configurations, thresholds on one
// configuration, thresholds on every configuration (one result each), and
// figures that cannot be had fail.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		threshold string
		want      []bool
	}{
		{"rps_ratio{config:tiered,base:redis}>=2", []bool{true}},
		{"rps_ratio{config:tiered,base:redis}>=3", []bool{false}},
		{"cpu_ratio{config:tiered,base:redis}<=0.6", []bool{true}},
		{"p50_ratio{config:tiered,base:redis}<=0.2", []bool{true}},
		{"cpu_ratio{config:tiered,base:static}<=10", []bool{false}}, // static's total is incomplete
		{"rps_ratio{config:tiered,base:local}>=1", []bool{false}},   // no such row
		{"http_req_failed{config:tiered}<0.01", []bool{false}},
		{"http_req_failed{config:redis}<0.01", []bool{true}},
		{"http_req_failed<0.01", []bool{true, false, true}},
		{"http_reqs{config:nosuch}>0", []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.threshold, func(t *testing.T) {
			th, err := loadtest.ParseCompareThreshold(tt.threshold)
			if err != nil {
				t.Fatal(err)
			}
			r := testResult()
			ok := r.Evaluate([]loadtest.Threshold{th})
			var got []bool
			all := true
			for _, res := range r.Thresholds {
				got = append(got, res.OK)
				all = all && res.OK
			}
			if len(got) != len(tt.want) || ok != all {
				t.Fatalf("got %v (ok %v), want %v", got, ok, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %+v, want %v", r.Thresholds, tt.want)
				}
			}
		})
	}
}

// TestParseCompareThreshold: ratios need both configurations; run's own
// parser knows neither the ratios nor the config tag.
func TestParseCompareThreshold(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"rps_ratio{config:tiered}>=2", "rps_ratio>=2", "cpu_ratio{base:redis}<1", "nosuch{config:tiered}<1"} {
		if _, err := loadtest.ParseCompareThreshold(bad); err == nil {
			t.Errorf("ParseCompareThreshold(%q): got nil error", bad)
		}
	}
	for _, bad := range []string{"rps_ratio{config:tiered,base:redis}>=2", "http_req_failed{config:tiered}<0.01"} {
		if _, err := loadtest.ParseThreshold(bad); err == nil {
			t.Errorf("ParseThreshold(%q): got nil error", bad)
		}
	}
}

// TestWriteTableMarksTargets: the DESIGN ratios are printed with their
// targets and whether they were met.
func TestWriteTableMarksTargets(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	r := testResult()
	r.WriteTable(&b)
	for _, want := range []string{"tiered/redis rps = 2.50 (target >= 2.00): met", "tiered/redis cpu = 0.40 (target <= 0.60): met",
		"tiered/static rps = 0.83 (target >= 0.95): missed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
