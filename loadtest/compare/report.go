package compare

import (
	"encoding/json"
	"math"
	"os"

	"github.com/tiercache/productcache/loadtest"
)

// Report is the JSON form of a comparison for CI to track: one entry per
// configuration, figures that were not measured as null.
type Report struct {
	Configs      []ConfigReport             `json:"configs"`
	Thresholds   []loadtest.ThresholdResult `json:"thresholds,omitempty"`
	ThresholdsOK bool                       `json:"thresholds_ok"`
}

// ConfigReport is one configuration's figures.
type ConfigReport struct {
	Config          string    `json:"config"`
	Replicas        int       `json:"replicas"`
	RPS             float64   `json:"rps"`
	P50Ms           float64   `json:"p50_ms"`
	P99Ms           float64   `json:"p99_ms"`
	CPUUSPerRequest CPUReport `json:"cpu_us_per_request"`
	HitRatio        HitReport `json:"hit_ratio"`
	DBQueriesPerReq *float64  `json:"db_queries_per_request"`
	StaleReads      *int64    `json:"stale_reads"`
	Failed          int64     `json:"failed"`
}

// CPUReport is CPU microseconds per request by component; Total is null
// unless every part was measured.
type CPUReport struct {
	Replicas *float64 `json:"replicas"`
	Redis    *float64 `json:"redis"`
	Postgres *float64 `json:"postgres"`
	Total    *float64 `json:"total"`
}

// HitReport is the share of cached reads each tier answered.
type HitReport struct {
	L1     float64 `json:"l1"`
	L2     float64 `json:"l2"`
	Origin float64 `json:"origin"`
}

// Report returns the JSON form of r.
func (r *Result) Report() Report {
	rep := Report{Configs: []ConfigReport{}, Thresholds: r.Thresholds, ThresholdsOK: r.ThresholdsOK()}
	for _, row := range r.Rows {
		s := row.Summary
		c := ConfigReport{
			Config: row.Name, Replicas: row.Replicas, RPS: s.RPS,
			P50Ms: s.Latency.Med, P99Ms: s.Latency.P99, Failed: s.Failed,
			HitRatio: HitReport{L1: s.Cache.L1, L2: s.Cache.L2, Origin: s.Cache.Origin},
			CPUUSPerRequest: CPUReport{
				Replicas: measured(s.CPU.Replicas), Redis: measured(s.CPU.Redis), Postgres: measured(s.CPU.Postgres),
			},
		}
		if s.CPU.Complete {
			c.CPUUSPerRequest.Total = &s.CPU.TotalUSPerReq
		}
		if s.DB.Available {
			c.DBQueriesPerReq = &s.DB.PerReq
		}
		if s.Consistency.Enabled {
			c.StaleReads = &s.Consistency.StaleReads
		}
		rep.Configs = append(rep.Configs, c)
	}
	return rep
}

func measured(p loadtest.CPUPart) *float64 {
	if !p.Measured {
		return nil
	}
	v := p.USPerReq
	return &v
}

// WriteJSONFile writes r.Report() to path.
func (r *Result) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r.Report(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Evaluate checks thresholds parsed by [loadtest.ParseCompareThreshold]
// against the rows, stores the results in r.Thresholds and reports
// whether all hold. A threshold without a config tag is checked on every
// row, one result each; a figure that was not measured fails.
func (r *Result) Evaluate(ts []loadtest.Threshold) bool {
	r.Thresholds = nil
	for _, t := range ts {
		switch t.Metric {
		case "rps_ratio", "cpu_ratio", "p50_ratio":
			r.add(t.Source, t, r.ratio(t.Metric, t.Tags["config"], t.Tags["base"]))
			continue
		}
		name := t.Tags["config"]
		plain := t
		plain.Tags = map[string]string{}
		for k, v := range t.Tags {
			if k != "config" {
				plain.Tags[k] = v
			}
		}
		found := false
		for _, row := range r.Rows {
			if name != "" && row.Name != name {
				continue
			}
			found = true
			src := t.Source
			if name == "" {
				src += " [" + row.Name + "]"
			}
			r.add(src, t, row.Summary.Value(plain))
		}
		if !found {
			r.add(t.Source+" (no such configuration)", t, math.NaN())
		}
	}
	return r.ThresholdsOK()
}

func (r *Result) add(src string, t loadtest.Threshold, actual float64) {
	ok := t.Pass(actual)
	if math.IsNaN(actual) {
		actual = 0
	}
	r.Thresholds = append(r.Thresholds, loadtest.ThresholdResult{Threshold: src, Actual: actual, OK: ok})
}

// ThresholdsOK reports whether every evaluated threshold held.
func (r *Result) ThresholdsOK() bool {
	for _, t := range r.Thresholds {
		if !t.OK {
			return false
		}
	}
	return true
}

// ratio is figure(config)/figure(base); NaN when either is missing.
func (r *Result) ratio(metric, config, base string) float64 {
	a, b := r.row(config), r.row(base)
	if a == nil || b == nil {
		return math.NaN()
	}
	f := func(s *loadtest.Summary) float64 {
		switch metric {
		case "rps_ratio":
			return s.RPS
		case "p50_ratio":
			return s.Latency.Med
		}
		if !s.CPU.Complete {
			return math.NaN()
		}
		return s.CPU.TotalUSPerReq
	}
	return f(a) / f(b)
}

func (r *Result) row(name string) *loadtest.Summary {
	for _, row := range r.Rows {
		if row.Name == name {
			return row.Summary
		}
	}
	return nil
}
