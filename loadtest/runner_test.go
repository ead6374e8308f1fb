package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRunAgainstFakeReplicas(t *testing.T) {
	f, urls := newFakeAPI(t, 3, 50, true)
	sc := &Scenario{
		Name:        "fake",
		Targets:     urls,
		VUs:         4,
		Duration:    Duration(20 * time.Second), // MaxRequests ends the run
		Keys:        KeySpec{Distribution: "zipf", S: 1.1},
		Mix:         Mix{Get: 80, List: 5, Update: 10, Create: 3, Delete: 2},
		Setup:       Setup{Products: 50},
		Probe:       ProbeSpec{Enabled: true},
		MaxRequests: 400,
		Thresholds: map[string][]string{
			"stale_reads":                  {"count==0"},
			"http_req_failed":              {"rate<0.001"},
			"checks":                       {"rate>0.99"},
			"cache_hit_ratio{tier=\"l1\"}": {"rate>0.3"},
		},
	}
	var progress bytes.Buffer
	// A 1ms series: even a run over in a few ms (a fast machine) closes
	// several points.
	sum, err := Run(t.Context(), sc, RunOptions{Progress: &progress, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 400 || sum.Iterations != 400 {
		t.Fatalf("requests=%d iterations=%d, want 400", sum.Requests, sum.Iterations)
	}
	if !sum.ThresholdsOK {
		var b strings.Builder
		sum.WriteText(&b)
		t.Errorf("thresholds failed on a coherent fake:\n%s", b.String())
	}
	if sum.Failed != 0 || sum.Checks.Fails != 0 {
		t.Errorf("failed=%d check fails=%d, want 0", sum.Failed, sum.Checks.Fails)
	}
	for _, typ := range []string{"get", "list", "update", "create"} {
		if sum.Types[typ].Requests == 0 {
			t.Errorf("no %s requests", typ)
		}
	}
	if c := sum.Cache; c.L1 == 0 || c.Origin == 0 || c.L1+c.L2+c.Origin < 0.999 {
		t.Errorf("cache ratios %+v, want both L1 hits and origin reads", c)
	}
	if want := int64(f.totalQueries() - 1); !sum.DB.Available || sum.DB.Total != want { // minus the setup's list
		t.Errorf("db queries %+v, want total %d", sum.DB, want)
	}
	if c := sum.Consistency; !c.Enabled || c.Writes == 0 || c.ReadsAfterWrite == 0 || c.StaleReads != 0 {
		t.Errorf("consistency %+v, want writes, reads after them and no stale reads", c)
	}
	if len(sum.Series) < 2 || progress.Len() == 0 {
		t.Errorf("series has %d points and progress %d bytes, want several", len(sum.Series), progress.Len())
	}
	var n int64
	for _, p := range sum.Series {
		n += p.Requests
	}
	if n != sum.Requests {
		t.Errorf("series adds up to %d requests, summary has %d", n, sum.Requests)
	}
}

func TestRunCatchesStaleReplicas(t *testing.T) {
	_, urls := newFakeAPI(t, 2, 2, false) // writes do not evict the other replica's copy
	sc := &Scenario{
		Targets:     urls,
		VUs:         2,
		Duration:    Duration(20 * time.Second), // MaxRequests ends the run
		Mix:         Mix{Get: 1, Update: 1},
		Setup:       Setup{Products: 2},
		Probe:       ProbeSpec{Enabled: true, Grace: Duration(time.Nanosecond)},
		MaxRequests: 400,
		Thresholds:  map[string][]string{"stale_reads": {"count==0"}},
	}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Consistency.StaleReads == 0 || sum.ThresholdsOK {
		t.Errorf("stale reads %+v, thresholds ok=%v; want stale reads caught and the threshold failed", sum.Consistency, sum.ThresholdsOK)
	}
}

func TestSummaryJSONFields(t *testing.T) {
	_, urls := newFakeAPI(t, 1, 10, true)
	sc := &Scenario{Targets: urls, VUs: 1, Duration: Duration(20 * time.Second), Setup: Setup{Products: 10}, MaxRequests: 20, Probe: ProbeSpec{Enabled: true}}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "executor", "targets", "start", "duration_s", "vus_max", "key_space",
		"iterations", "dropped_iterations", "http_reqs", "http_reqs_per_s", "http_req_failures", "http_req_failed",
		"http_req_duration", "checks", "types", "cache", "collapsed", "db_queries", "consistency",
		"thresholds", "thresholds_ok", "series"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON has no %q", k)
		}
	}
	lat := m["http_req_duration"].(map[string]any)
	for _, k := range []string{"count", "avg", "min", "med", "p90", "p95", "p99", "p99_9", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("http_req_duration has no %q", k)
		}
	}
	if got := m["http_reqs"].(float64); got != 20 {
		t.Errorf("http_reqs = %v, want 20", got)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, sum); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Throughput", "Latency", "per tier", "polyline"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(html.String(), "http://") || strings.Contains(html.String(), "https://") {
		t.Error("HTML report refers to an external URL")
	}
}

func TestRunExecutors(t *testing.T) {
	_, urls := newFakeAPI(t, 2, 20, true)
	tests := []struct {
		name string
		sc   Scenario
	}{
		{"ramping-vus", Scenario{Executor: RampingVUs, Stages: []Stage{
			{Duration: Duration(100 * time.Millisecond), Target: 4},
			{Duration: Duration(100 * time.Millisecond), Target: 0},
		}}},
		{"constant-arrival-rate", Scenario{Executor: ConstantArrivalRate, Rate: 200, Duration: Duration(200 * time.Millisecond),
			PreAllocatedVUs: 2, MaxVUs: 8}},
		{"warmup", Scenario{VUs: 2, Warmup: Duration(50 * time.Millisecond), MaxRequests: 30, Duration: Duration(20 * time.Second)}},
		{"ramping-arrival-rate", Scenario{Executor: RampingArrivalRate, StartRate: 0, PreAllocatedVUs: 2, MaxVUs: 8,
			Stages: []Stage{{Duration: Duration(200 * time.Millisecond), Target: 400}}}},
		{"scenarios", Scenario{Scenarios: map[string]ExecSpec{
			"open":   {Executor: ConstantArrivalRate, Rate: 100, Duration: Duration(200 * time.Millisecond), PreAllocatedVUs: 2, MaxVUs: 8, StartTime: Duration(100 * time.Millisecond)},
			"closed": {Executor: ConstantVUs, VUs: 2, Duration: Duration(100 * time.Millisecond)},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := tt.sc
			sc.Targets, sc.Setup.Products, sc.Balance = urls, 20, "random"
			sum, err := Run(t.Context(), &sc, RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Requests == 0 || sum.Failed != 0 {
				t.Errorf("requests=%d failed=%d", sum.Requests, sum.Failed)
			}
			switch tt.name {
			case "constant-arrival-rate": // 40 arrivals: each ran or was dropped
				if sum.Requests+sum.Dropped != 40 {
					t.Errorf("requests %d + dropped %d, want 40", sum.Requests, sum.Dropped)
				}
			case "warmup": // the warmup's requests are not counted
				if sum.Requests != 30 {
					t.Errorf("requests %d, want the budget of 30", sum.Requests)
				}
			case "ramping-arrival-rate": // 0 to 400/s over 200ms: the area is 40 arrivals
				if n := sum.Requests + sum.Dropped; n < 39 || n > 41 {
					t.Errorf("requests %d + dropped %d, want 40", sum.Requests, sum.Dropped)
				}
			case "scenarios": // 20 arrivals of "open" beside "closed"'s VUs, which add some
				if sum.Requests+sum.Dropped <= 20 || sum.Executor != "closed: constant-vus, open: constant-arrival-rate" || sum.VUsMax != 10 {
					t.Errorf("requests %d + dropped %d (want over 20), executor %q, VUs %d (want 10)", sum.Requests, sum.Dropped, sum.Executor, sum.VUsMax)
				}
				if d := sum.DurationS; d < 0.25 {
					t.Errorf("ran %.2fs, want about the 300ms the later scenario ends at", d)
				}
			}
		})
	}
}

// TestRunSamplesDB: with SampleDB each interval carries the targets'
// database queries, which add up to no more than the run's; without it
// none does.
func TestRunSamplesDB(t *testing.T) {
	_, urls := newFakeAPI(t, 2, 20, true)
	for _, sample := range []bool{true, false} {
		sc := &Scenario{Targets: urls, VUs: 2, Duration: Duration(300 * time.Millisecond), Setup: Setup{Products: 20}}
		sum, err := Run(t.Context(), sc, RunOptions{Interval: 50 * time.Millisecond, SampleDB: sample})
		if err != nil {
			t.Fatal(err)
		}
		var sampled, total int64
		for _, p := range sum.Series {
			if p.DBQueries >= 0 {
				sampled++
				total += p.DBQueries
			}
		}
		if sample && (sampled == 0 || total == 0 || total > sum.DB.Total) {
			t.Errorf("sampled %d intervals, %d queries; want some, at most the run's %d", sampled, total, sum.DB.Total)
		}
		if !sample && sampled != 0 {
			t.Errorf("sampled %d intervals without SampleDB", sampled)
		}
	}
}

// TestRunCountsFailSafe: with half the reads opting in to stale-if-error
// and a fake that fails every 5th read, opted-in reads get the version
// before, labelled, and the others a 503; the labelled answers are their
// own class (not hits, not stale reads) and none went to a read that did
// not opt in.
func TestRunCountsFailSafe(t *testing.T) {
	f, urls := newFakeAPI(t, 2, 20, true)
	f.fail503Every, f.failSafe = 5, true
	sc := &Scenario{
		Name: "failsafe", Targets: urls, VUs: 4, Duration: Duration(20 * time.Second),
		Mix: Mix{Get: 90, Update: 10}, Setup: Setup{Products: 20}, Probe: ProbeSpec{Enabled: true},
		MaxRequests: 600, StaleIfError: Duration(60 * time.Second), StaleIfErrorShare: 0.5,
	}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs := sum.FailSafe
	if fs.AllowanceS != 60 || fs.OptIn == 0 || fs.OtherReads == 0 || fs.Served == 0 || fs.OptInFailed != 0 ||
		fs.OtherFailed == 0 || fs.Unrequested != 0 || fs.OverAllowance != 0 || fs.MaxAgeS != 3 {
		t.Errorf("failsafe %+v", fs)
	}
	if c := sum.Cache; c.FailSafeServed != fs.Served || c.FailSafe == 0 || sum.Types["get"].Cache.FailSafeServed != fs.Served {
		t.Errorf("cache %+v, want the %d labelled answers as their own class", c, fs.Served)
	}
	if c := sum.Consistency; c.StaleReads != 0 || c.LabelledReads == 0 {
		t.Errorf("consistency %+v, want labelled reads and no stale read", c)
	}
}
