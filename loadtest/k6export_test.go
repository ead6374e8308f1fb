package loadtest

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestK6SummaryExport: the export reads as k6's --summary-export does:
// metrics by name with k6's fields per metric type, thresholds as
// condition -> failed, and a root group with the check.
func TestK6SummaryExport(t *testing.T) {
	t.Parallel()
	s := &Summary{DurationS: 2, Requests: 1000, Failed: 10, FailRate: 0.01, Iterations: 1000, VUsMax: 8,
		Checks:  CheckResult{Passes: 990, Fails: 10, Rate: 0.99},
		Latency: Percentiles{Count: 1000, Avg: 1.5, Min: 0.2, Med: 1.1, P90: 2.5, P95: 3, P99: 9, Max: 20},
		Types:   map[string]TypeSummary{"get": {Requests: 900, Failed: 1}},
	}
	var ths []Threshold
	for _, src := range []string{"http_req_duration: p(95)<5ms", "http_req_failed: rate<0.001", "lost_writes==0"} {
		th, err := ParseThreshold(src)
		if err != nil {
			t.Fatal(err)
		}
		ths = append(ths, th)
	}
	s.Evaluate(ths)
	path := filepath.Join(t.TempDir(), "export.json")
	if err := s.WriteK6SummaryExport(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RootGroup map[string]any            `json:"root_group"`
		Metrics   map[string]map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	fields := func(name string) []string { return slices.Sorted(maps.Keys(doc.Metrics[name])) }
	for name, want := range map[string][]string{
		"http_reqs":                   {"count", "rate"},
		"http_req_duration":           {"avg", "max", "med", "min", "p(90)", "p(95)", "thresholds"},
		"http_req_duration{type:get}": {"avg", "max", "med", "min", "p(90)", "p(95)"},
		"http_req_failed":             {"fails", "passes", "thresholds", "value"},
		"checks":                      {"fails", "passes", "value"},
		"vus":                         {"max", "min", "value"},
		"lost_writes":                 {"count", "rate", "thresholds"},
	} {
		if got := fields(name); !slices.Equal(got, want) {
			t.Errorf("%s: fields %v, want %v", name, got, want)
		}
	}
	if doc.Metrics["http_reqs"]["count"] != 1000.0 || doc.Metrics["http_reqs"]["rate"] != 500.0 {
		t.Errorf("http_reqs: %v", doc.Metrics["http_reqs"])
	}
	if f := doc.Metrics["http_req_failed"]; f["passes"] != 10.0 || f["fails"] != 990.0 || f["value"] != 0.01 {
		t.Errorf("http_req_failed (passes are failed requests, as in k6): %v", f)
	}
	want := map[string]any{"p(95)<5ms": false}
	if got := doc.Metrics["http_req_duration"]["thresholds"]; !maps.Equal(got.(map[string]any), want) {
		t.Errorf("http_req_duration thresholds: got %v, want %v (false: held)", got, want)
	}
	if got := doc.Metrics["http_req_failed"]["thresholds"].(map[string]any)["rate<0.001"]; got != true {
		t.Errorf("http_req_failed rate<0.001: got %v, want true (failed)", got)
	}
	checks := doc.RootGroup["checks"].(map[string]any)
	if doc.RootGroup["id"] != "d41d8cd98f00b204e9800998ecf8427e" || doc.RootGroup["path"] != "" || len(checks) != 1 {
		t.Errorf("root_group: %v", doc.RootGroup)
	}
	for _, c := range checks {
		if c := c.(map[string]any); c["passes"] != 990.0 || c["fails"] != 10.0 {
			t.Errorf("check: %v", c)
		}
	}
}
