package compare

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/tiercache/productcache/loadtest"
)

// Report is the JSON form of a comparison for CI to track: one entry per
// configuration, figures that were not measured as null.
type Report struct {
	Configs []ConfigReport `json:"configs"`
	// Rounds has every round's configurations when there were several;
	// Configs then has each configuration's median round.
	Rounds []RoundReport `json:"rounds,omitempty"`
	// Ratios are the project's target ratios, each marked met or not.
	Ratios       []RatioReport              `json:"ratios"`
	Thresholds   []loadtest.ThresholdResult `json:"thresholds,omitempty"`
	ThresholdsOK bool                       `json:"thresholds_ok"`
}

// RoundReport is one round of a comparison of several.
type RoundReport struct {
	Configs []ConfigReport `json:"configs"`
}

// ConfigReport is one configuration's figures.
type ConfigReport struct {
	Config          string    `json:"config"`
	Replicas        int       `json:"replicas"`
	RPS             float64   `json:"rps"`
	P50Ms           float64   `json:"p50_ms"`
	P99Ms           float64   `json:"p99_ms"`
	CPUUSPerRequest CPUReport `json:"cpu_us_per_request"`
	// RedisUSPerRequest is Redis's execution time per request by command
	// family (INFO commandstats); null when not measured.
	RedisUSPerRequest map[string]float64 `json:"redis_us_per_request_by_family"`
	HitRatio          HitReport          `json:"hit_ratio"`
	DBQueriesPerReq   *float64           `json:"db_queries_per_request"`
	StaleReads        *int64             `json:"stale_reads"`
	Failed            int64              `json:"failed"`
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
	rep := Report{Configs: configReports(r.Rows), Ratios: r.DesignRatios(), Thresholds: r.Thresholds, ThresholdsOK: r.ThresholdsOK()}
	if rep.Ratios == nil {
		rep.Ratios = []RatioReport{}
	}
	for _, rows := range r.Rounds {
		rep.Rounds = append(rep.Rounds, RoundReport{Configs: configReports(rows)})
	}
	return rep
}

func configReports(rows []Row) []ConfigReport {
	out := []ConfigReport{}
	for _, row := range rows {
		s := row.Summary
		c := ConfigReport{
			Config: row.Name, Replicas: row.Replicas, RPS: s.RPS,
			P50Ms: s.Latency.Med, P99Ms: s.Latency.P99, Failed: s.Failed,
			HitRatio: HitReport{L1: s.Cache.L1, L2: s.Cache.L2, Origin: s.Cache.Origin},
			CPUUSPerRequest: CPUReport{
				Replicas: measured(s.CPU.Replicas), Redis: measured(s.CPU.Redis), Postgres: measured(s.CPU.Postgres),
			},
		}
		if s.RedisCommands.Measured {
			c.RedisUSPerRequest = map[string]float64{}
			for _, f := range s.RedisCommands.Families {
				c.RedisUSPerRequest[f.Name] = f.USPerReq
			}
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
		out = append(out, c)
	}
	return out
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

// ratio is figure(config)/figure(base), NaN when either is missing; of
// several rounds, the median of the rounds' ratios (each round's two runs
// were close in time, so their ratio is what drift disturbs least).
func (r *Result) ratio(metric, config, base string) float64 {
	v, _ := r.ratioRounds(metric, config, base)
	return v
}

// ratioRounds is ratio, and each round's ratio when there were several.
func (r *Result) ratioRounds(metric, config, base string) (float64, []float64) {
	if len(r.Rounds) == 0 {
		return rowsRatio(r.Rows, metric, config, base), nil
	}
	var each, ok []float64
	for _, rows := range r.Rounds {
		v := rowsRatio(rows, metric, config, base)
		each = append(each, v)
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return math.NaN(), each
	}
	slices.Sort(ok)
	n := len(ok)
	if n%2 == 1 {
		return ok[n/2], each
	}
	return (ok[n/2-1] + ok[n/2]) / 2, each
}

func rowsRatio(rows []Row, metric, config, base string) float64 {
	a, b := findRow(rows, config), findRow(rows, base)
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

func (r *Result) row(name string) *loadtest.Summary { return findRow(r.Rows, name) }

func findRow(rows []Row, name string) *loadtest.Summary {
	for _, row := range rows {
		if row.Name == name {
			return row.Summary
		}
	}
	return nil
}

// RatioReport is one of the project's target ratios: tiered against
// another configuration.
type RatioReport struct {
	Ratio  string     `json:"ratio"` // rps_ratio, cpu_ratio or p50_ratio
	Config string     `json:"config"`
	Base   string     `json:"base"`
	Value  float64    `json:"value"`            // of several rounds, the median of Rounds
	Rounds []*float64 `json:"rounds,omitempty"` // each round's, null where it could not be had
	Target string     `json:"target"`           // for example ">= 0.95"
	Met    bool       `json:"met"`
}

// DesignRatios returns the project's target ratios that the rows allow:
// tiered's throughput at least 0.95x static, 2x redis and 3.5x none; its
// CPU per request at most 0.6x redis's and 0.3x none's; its p50 at most
// a third of redis's.
func (r *Result) DesignRatios() []RatioReport {
	var out []RatioReport
	for _, c := range []struct {
		metric, base, op string
		target           float64
	}{
		{"rps_ratio", "static", ">=", 0.95}, {"rps_ratio", "redis", ">=", 2}, {"rps_ratio", "none", ">=", 3.5},
		{"cpu_ratio", "redis", "<=", 0.6}, {"cpu_ratio", "none", "<=", 0.3}, {"p50_ratio", "redis", "<=", 1.0 / 3},
	} {
		v, each := r.ratioRounds(c.metric, "tiered", c.base)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		d := RatioReport{Ratio: c.metric, Config: "tiered", Base: c.base, Value: v,
			Target: fmt.Sprintf("%s %.2f", c.op, c.target), Met: loadtest.Threshold{Op: c.op, Value: c.target}.Pass(v)}
		for _, e := range each {
			if math.IsNaN(e) || math.IsInf(e, 0) {
				d.Rounds = append(d.Rounds, nil)
			} else {
				d.Rounds = append(d.Rounds, &e)
			}
		}
		out = append(out, d)
	}
	return out
}
