package loadtest

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Threshold is one pass/fail condition on a metric of the [Summary], in k6
// syntax: "http_req_duration: p(99)<5ms", "http_req_duration{type:get}:
// p(95)<10ms", `cache_hit_ratio{tier="l1"}>0.9`, "stale_reads==0",
// "http_req_failed<0.001", "checks>0.99".
//
// Metrics, their aggregations (the first is the default) and tags:
//
//	http_req_duration   avg min med max p(N) count  (ms)   type
//	http_req_failed     rate                               type
//	http_reqs           count rate (per second)            type
//	checks              rate
//	cache_hit_ratio     rate                               tier (l1, l2, hit, origin), type
//	stale_reads         count rate (of reads after a write)
//	staleness           max p(N) avg count (ms)
//	db_queries          count rate (per second) per_req
//	iterations          count rate
//	dropped_iterations  count
//	lost_writes         count (always checked: lost_writes==0 is built in)
//	cpu_per_request     avg (µs of CPU per request)           component (replicas, redis, postgres, total)
//
// Durations take a unit (us, ms, s, m; ms when absent); ratios may be
// written as percentages ("90%").
type Threshold struct {
	Source string            // as written
	Metric string            // e.g. "http_req_duration"
	Tags   map[string]string // e.g. {"type": "get"}
	Agg    string            // "p" for percentiles, else the aggregation name
	P      float64           // the percentile, when Agg == "p"
	Op     string            // < <= > >= == !=
	Value  float64
}

// ThresholdResult is a threshold evaluated on a summary.
type ThresholdResult struct {
	Threshold string  `json:"threshold"`
	Actual    float64 `json:"actual"`
	OK        bool    `json:"ok"`
}

type metricDef struct {
	aggs     []string // first is the default; "p" means p(N)
	tags     []string
	duration bool
}

var metricDefs = map[string]metricDef{
	"http_req_duration":  {aggs: []string{"", "avg", "min", "med", "max", "p", "count"}, tags: []string{"type"}, duration: true},
	"http_req_failed":    {aggs: []string{"rate"}, tags: []string{"type"}},
	"http_reqs":          {aggs: []string{"count", "rate"}, tags: []string{"type"}},
	"checks":             {aggs: []string{"rate"}},
	"cache_hit_ratio":    {aggs: []string{"rate"}, tags: []string{"tier", "type"}},
	"stale_reads":        {aggs: []string{"count", "rate"}},
	"staleness":          {aggs: []string{"max", "p", "avg", "count"}, duration: true},
	"db_queries":         {aggs: []string{"count", "rate", "per_req"}},
	"iterations":         {aggs: []string{"count", "rate"}},
	"dropped_iterations": {aggs: []string{"count"}},
	"lost_writes":        {aggs: []string{"count"}},
	"cpu_per_request":    {aggs: []string{"avg"}, tags: []string{"component"}},
}

// lostWritesThreshold is built in: every run checks it, whatever the
// scenario says. An acknowledged write that is gone is never acceptable.
var lostWritesThreshold = func() Threshold {
	t, err := ParseThreshold("lost_writes==0")
	if err != nil {
		panic(err)
	}
	t.Source += " (built in)"
	return t
}()

var (
	thresholdRE = regexp.MustCompile(`^\s*([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?\s*:?\s*(.*)$`)
	exprRE      = regexp.MustCompile(`^\s*(?:(p\(\s*[0-9.]+\s*\)|[a-z_]+)\s*)?(<=|>=|==|!=|<|>)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*(us|µs|ms|s|m|%)?\s*$`)
)

// ParseThreshold parses "metric{tags}: expr" (the colon is optional).
func ParseThreshold(s string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return Threshold{}, fmt.Errorf("loadtest: threshold %q: want metric{tags}: expr", s)
	}
	return parseCondition(s, m[1]+m[2], m[3], false)
}

// ParseCompareThreshold parses a threshold of a comparison: any metric
// of [ParseThreshold], which may name the configuration it holds for
// (http_req_duration{config:tiered}: p(99)<5ms; without a config tag it
// holds for every configuration), or a ratio of one configuration's figure
// to another's:
//
//	rps_ratio{config:tiered,base:redis} >= 2     requests per second
//	cpu_ratio{config:tiered,base:redis} <= 0.6   total CPU per request
//	p50_ratio{config:tiered,base:redis} <= 0.33  median latency
func ParseCompareThreshold(s string) (Threshold, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return Threshold{}, fmt.Errorf("loadtest: threshold %q: want metric{tags}: expr", s)
	}
	return parseCondition(s, m[1]+m[2], m[3], true)
}

// compareMetricDefs are the metrics only a comparison has.
var compareMetricDefs = map[string]metricDef{
	"rps_ratio": {aggs: []string{"value"}, tags: []string{"config", "base"}},
	"cpu_ratio": {aggs: []string{"value"}, tags: []string{"config", "base"}},
	"p50_ratio": {aggs: []string{"value"}, tags: []string{"config", "base"}},
}

// Value is the figure of s that t compares (NaN for one not measured).
func (s *Summary) Value(t Threshold) float64 { return s.metric(t) }

// ParseThresholds parses the scenario form: metric (with tags) to conditions.
func ParseThresholds(m map[string][]string) ([]Threshold, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Threshold
	for _, k := range keys {
		for _, expr := range m[k] {
			t, err := ParseThreshold(k + ": " + expr)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func parseCondition(src, metric, expr string, compare bool) (Threshold, error) {
	t := Threshold{Source: strings.TrimSpace(src)}
	name, tags, err := parseMetricTags(metric)
	if err != nil {
		return t, fmt.Errorf("loadtest: threshold %q: %w", src, err)
	}
	def, ok := metricDefs[name]
	if !ok && compare {
		def, ok = compareMetricDefs[name]
		if ok && (tags["config"] == "" || tags["base"] == "") {
			return t, fmt.Errorf("loadtest: threshold %q: %s needs the tags config and base", src, name)
		}
	}
	if !ok {
		return t, fmt.Errorf("loadtest: threshold %q: unknown metric %q", src, name)
	}
	for k := range tags {
		if !contains(def.tags, k) && !(compare && k == "config") {
			return t, fmt.Errorf("loadtest: threshold %q: metric %s has no tag %q", src, name, k)
		}
	}
	t.Metric, t.Tags = name, tags
	e := exprRE.FindStringSubmatch(expr)
	if e == nil {
		return t, fmt.Errorf("loadtest: threshold %q: want [aggregation] op value, e.g. p(99)<5ms", src)
	}
	if err := t.setAgg(def, e[1]); err != nil {
		return t, fmt.Errorf("loadtest: threshold %q: %w", src, err)
	}
	t.Op = e[2]
	t.Value, err = parseValue(e[3], e[4], def.duration && t.Agg != "count")
	if err != nil {
		return t, fmt.Errorf("loadtest: threshold %q: %w", src, err)
	}
	return t, nil
}

func (t *Threshold) setAgg(def metricDef, agg string) error {
	if agg == "" {
		if def.aggs[0] == "" {
			return fmt.Errorf("an aggregation is required (%s)", strings.Join(def.aggs[1:], ", "))
		}
		t.Agg = def.aggs[0]
		return nil
	}
	if strings.HasPrefix(agg, "p(") {
		p, err := strconv.ParseFloat(strings.TrimSpace(agg[2:len(agg)-1]), 64)
		if err != nil || p < 0 || p > 100 || !contains(def.aggs, "p") {
			return fmt.Errorf("bad percentile %s", agg)
		}
		t.Agg, t.P = "p", p
		return nil
	}
	if agg == "value" {
		agg = def.aggs[0]
	}
	if agg == "" || !contains(def.aggs, agg) {
		return fmt.Errorf("aggregation %q not available for %s", agg, t.Metric)
	}
	t.Agg = agg
	return nil
}

func parseMetricTags(s string) (string, map[string]string, error) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return strings.TrimSpace(s), nil, nil
	}
	rest = strings.TrimSuffix(strings.TrimSpace(rest), "}")
	tags := map[string]string{}
	for kv := range strings.SplitSeq(rest, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			k, v, ok = strings.Cut(kv, "=")
		}
		if !ok {
			return "", nil, fmt.Errorf("bad tag %q (want key:value or key=\"value\")", kv)
		}
		tags[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return strings.TrimSpace(name), tags, nil
}

func parseValue(num, unit string, duration bool) (float64, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", num)
	}
	switch unit {
	case "":
	case "%":
		if duration {
			return 0, fmt.Errorf("%% on a duration")
		}
		v /= 100
	default:
		if !duration {
			return 0, fmt.Errorf("unit %q on a metric that is not a duration", unit)
		}
		v *= map[string]float64{"us": 0.001, "µs": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
	}
	return v, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Pass reports whether actual satisfies the condition.
func (t Threshold) Pass(actual float64) bool {
	if math.IsNaN(actual) {
		return false
	}
	switch t.Op {
	case "<":
		return actual < t.Value
	case "<=":
		return actual <= t.Value
	case ">":
		return actual > t.Value
	case ">=":
		return actual >= t.Value
	case "==":
		return actual == t.Value
	case "!=":
		return actual != t.Value
	}
	return false
}

// Evaluate checks every threshold against s, stores the results in
// s.Thresholds and s.ThresholdsOK, and returns ThresholdsOK.
func (s *Summary) Evaluate(ts []Threshold) bool {
	s.Thresholds = s.Thresholds[:0]
	s.ThresholdsOK = true
	for _, t := range ts {
		actual := s.metric(t)
		ok := t.Pass(actual)
		if math.IsNaN(actual) {
			actual = 0 // not measured: failed, and JSON has no NaN
		}
		s.Thresholds = append(s.Thresholds, ThresholdResult{Threshold: t.Source, Actual: actual, OK: ok})
		s.ThresholdsOK = s.ThresholdsOK && ok
	}
	return s.ThresholdsOK
}
