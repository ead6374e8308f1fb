package compare

import (
	"bytes"
	"encoding/json"
	"math"
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

// TestWriteTableMarksTargets: the target ratios (docs/design.md §6) are printed with their
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

// TestRoundsAreMedians: of several rounds, each configuration's row is its
// round with the median req/s (a run that happened), and each ratio is the
// median of the rounds' ratios, not the ratio of the median rows; the JSON
// has every round and the ratios with their rounds.
func TestRoundsAreMedians(t *testing.T) {
	t.Parallel()
	round := func(tiered, static, tieredCPU float64) []Row {
		return []Row{
			{Target: Target{Name: "tiered", Replicas: 3}, Summary: summary(tiered, 1, tieredCPU, true, 0)},
			{Target: Target{Name: "static", Replicas: 3}, Summary: summary(static, 1, 50, true, 0)},
		}
	}
	r := &Result{}
	// The machine's other load halves both in round 2: the ratio holds.
	r.finish(round(1000, 1000, 40), 3)
	r.finish(round(500, 520, 45), 3)
	r.finish(round(900, 1000, 35), 3)
	if len(r.Rounds) != 3 || len(r.Rows) != 2 {
		t.Fatalf("got %d rounds and %d rows, want 3 and 2", len(r.Rounds), len(r.Rows))
	}
	if got := r.row("tiered").RPS; got != 900 {
		t.Errorf("tiered's row has %v req/s, want its median round's 900", got)
	}
	if got := r.row("static").RPS; got != 1000 {
		t.Errorf("static's row has %v req/s, want 1000 (the lower middle of 520, 1000, 1000)", got)
	}
	// Rounds' ratios 1.0, 0.9615, 0.9: median 0.9615; the median rows'
	// would be 0.9.
	if got := r.ratio("rps_ratio", "tiered", "static"); math.Abs(got-500.0/520) > 1e-9 {
		t.Errorf("rps ratio %v, want the median of the rounds' ratios %v", got, 500.0/520)
	}
	if got := r.ratio("cpu_ratio", "tiered", "static"); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("cpu ratio %v, want 0.8 (rounds 0.8, 0.9, 0.7)", got)
	}
	var b bytes.Buffer
	r.WriteTable(&b)
	for _, want := range []string{"3 rounds", "round 2: tiered 500 req/s", "tiered/static rps = 0.96 (target >= 0.95, median of rounds 1.00 0.96 0.90): met"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	j, err := json.Marshal(r.Report())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Configs []map[string]any `json:"configs"`
		Rounds  []struct {
			Configs []map[string]any `json:"configs"`
		} `json:"rounds"`
		Ratios []RatioReport `json:"ratios"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Configs) != 2 || len(doc.Rounds) != 3 || len(doc.Rounds[1].Configs) != 2 || doc.Rounds[1].Configs[0]["rps"] != 500.0 {
		t.Errorf("JSON configs/rounds wrong:\n%s", j)
	}
	if len(doc.Ratios) != 1 || doc.Ratios[0].Ratio != "rps_ratio" || doc.Ratios[0].Base != "static" || len(doc.Ratios[0].Rounds) != 3 || !doc.Ratios[0].Met {
		t.Errorf("JSON ratios %+v, want tiered/static rps with its 3 rounds, met", doc.Ratios)
	}
}

// TestRoundsPartial: a round cut short keeps the rows that ran, and a
// ratio a round cannot give is left out of the median.
func TestRoundsPartial(t *testing.T) {
	t.Parallel()
	r := &Result{}
	r.finish([]Row{
		{Target: Target{Name: "tiered"}, Summary: summary(1000, 1, 0, false, 0)},
		{Target: Target{Name: "static"}, Summary: summary(1000, 1, 0, false, 0)},
	}, 2)
	r.finish([]Row{{Target: Target{Name: "tiered"}, Summary: summary(800, 1, 0, false, 0)}, {}}, 2)
	if len(r.Rounds) != 2 || len(r.Rounds[1]) != 1 {
		t.Fatalf("rounds %v, want the second with only tiered", r.Rounds)
	}
	if got := r.ratio("rps_ratio", "tiered", "static"); got != 1 {
		t.Errorf("rps ratio %v, want 1 (round 2 had no static)", got)
	}
	if got := r.ratio("cpu_ratio", "tiered", "static"); !math.IsNaN(got) {
		t.Errorf("cpu ratio %v, want NaN (no round measured it)", got)
	}
	if _, err := json.Marshal(r.Report()); err != nil {
		t.Errorf("a round without a ratio must still marshal: %v", err)
	}
}

// TestWritesSection: a write-heavy comparison prints each configuration's
// write rate and update p99, per round and as medians of the rounds.
func TestWritesSection(t *testing.T) {
	t.Parallel()
	writes := func(updates int64, p99 float64) *loadtest.Summary {
		s := summary(1000, 1, 0, false, 0)
		s.DurationS = 10
		up := loadtest.TypeSummary{Requests: updates}
		up.Latency.P99 = p99
		s.Types = map[string]loadtest.TypeSummary{"update": up, "create": {Requests: 100, Failed: 1}, "get": {Requests: 5000}}
		return s
	}
	r := &Result{}
	for i, n := range []int64{900, 1100, 1000} {
		r.finish([]Row{
			{Target: Target{Name: "wait0"}, Summary: writes(n, float64(i+2))},
			{Target: Target{Name: "wait1"}, Summary: writes(n/2, 9)},
		}, 3)
	}
	var b bytes.Buffer
	r.writeWrites(&b)
	out := b.String()
	for _, want := range []string{
		"wait0: ", "medians of 3 rounds: 110 writes/s, update p99 3.00ms", // (1000+100)/10 s; p99s 2, 3, 4
		"wait1: ", "medians of 3 rounds: 60 writes/s, update p99 9.00ms",
		"writes round 2: wait0 120 writes/s", "of 1200 failed",
		"wait1 / wait0, median of the rounds' ratios: 0.55x writes/s, 3.00x update p99",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("writes section lacks %q:\n%s", want, out)
		}
	}
	var none bytes.Buffer
	testResult().writeWrites(&none)
	if none.Len() != 0 {
		t.Errorf("a comparison without writes printed %q", none.String())
	}
}
