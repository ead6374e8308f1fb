package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Summary is the machine-readable result of a run (-out summary=FILE). Ratios
// are in [0,1], latencies in milliseconds, rates per second.
type Summary struct {
	Scenario  string    `json:"scenario"`
	Executor  string    `json:"executor"`
	Targets   []string  `json:"targets"`
	Start     time.Time `json:"start"`
	DurationS float64   `json:"duration_s"`
	VUsMax    int       `json:"vus_max"`
	KeySpace  int       `json:"key_space"`
	// Interrupted is true when the run was cancelled before its end.
	Interrupted bool  `json:"interrupted"`
	Iterations  int64 `json:"iterations"`
	Dropped     int64 `json:"dropped_iterations"`

	Requests int64       `json:"http_reqs"`
	RPS      float64     `json:"http_reqs_per_s"`
	Failed   int64       `json:"http_req_failures"`
	FailRate float64     `json:"http_req_failed"`
	Latency  Percentiles `json:"http_req_duration"`
	Checks   CheckResult `json:"checks"`
	// StatusCodes counts every response by its status code.
	StatusCodes map[string]int64 `json:"status_codes"`
	// Failures explains http_req_failures: by status, by transport
	// error and by target.
	Failures Failures `json:"failures"`

	// Types has requests, failures, latency and (for get and list) cache
	// tiers per request type; only types that were sent appear.
	Types map[string]TypeSummary `json:"types"`
	// Cache is the tier breakdown of cached reads (get and list).
	Cache     HitRatios `json:"cache"`
	Collapsed int64     `json:"collapsed"`
	// FailSafe counts the reads that opted in to stale-if-error and the
	// labelled stale answers, apart from the cache hits and from the
	// consistency probe's stale reads.
	FailSafe FailSafe `json:"failsafe"`
	// TierLatency is the latency of GET /products/{id} by the tier that
	// answered: "l1", "l2", "origin" and "unknown" (no Cache-Status).
	TierLatency map[string]Percentiles `json:"tier_latency"`

	DB  DBQueries `json:"db_queries"`
	CPU CPU       `json:"cpu"`
	// RedisCommands is Redis's CPU by command family, when a
	// [RunOptions.RedisMeter] measured it.
	RedisCommands RedisCommands `json:"redis_commands"`
	Consistency   ProbeResult   `json:"consistency"`
	LostWrites    LostWrites    `json:"lost_writes"`

	Thresholds   []ThresholdResult `json:"thresholds"`
	ThresholdsOK bool              `json:"thresholds_ok"`

	Series []Point `json:"series"`
}

// CheckResult counts response checks (status code, a version on reads).
type CheckResult struct {
	Passes int64   `json:"passes"`
	Fails  int64   `json:"fails"`
	Rate   float64 `json:"rate"`
}

// TypeSummary is the part of the summary for one request type.
type TypeSummary struct {
	Requests int64       `json:"requests"`
	Failed   int64       `json:"failed"`
	Latency  Percentiles `json:"latency"`
	Cache    *HitRatios  `json:"cache,omitempty"`
}

// DBQueries are deltas of productsd_db_queries_total across the run.
type DBQueries struct {
	Available bool             `json:"available"` // every target answered /metrics
	Total     int64            `json:"total"`
	PerReq    float64          `json:"per_request"`
	PerS      float64          `json:"per_s"`
	ByOp      map[string]int64 `json:"by_op,omitempty"`
	ByTarget  map[string]int64 `json:"by_target,omitempty"`
}

// metric returns the value a threshold compares; absent data counts as 0.
func (s *Summary) metric(t Threshold) float64 {
	typ, hasType := t.Tags["type"]
	ts := s.Types[typ]
	switch t.Metric {
	case "http_req_duration":
		p := s.Latency
		if hasType {
			p = ts.Latency
		}
		return p.agg(t.Agg, t.P)
	case "http_req_failed":
		if hasType {
			return ratio(ts.Failed, ts.Requests)
		}
		return s.FailRate
	case "http_reqs":
		n := s.Requests
		if hasType {
			n = ts.Requests
		}
		return s.countOrRate(t.Agg, n)
	case "checks":
		return s.Checks.Rate
	case "cache_hit_ratio":
		return s.hitRatio(t.Tags)
	case "stale_reads":
		if t.Agg == "rate" {
			return ratio(s.Consistency.StaleReads, s.Consistency.ReadsAfterWrite)
		}
		return float64(s.Consistency.StaleReads)
	case "staleness":
		if t.Agg == "max" {
			return s.Consistency.MaxStalenessMs
		}
		return s.Consistency.Staleness.agg(t.Agg, t.P)
	case "db_queries":
		if t.Agg == "per_req" {
			return s.DB.PerReq
		}
		return s.countOrRate(t.Agg, s.DB.Total)
	case "cpu_per_request":
		return s.CPU.component(t.Tags["component"])
	case "iterations":
		return s.countOrRate(t.Agg, s.Iterations)
	case "dropped_iterations":
		return float64(s.Dropped)
	case "lost_writes":
		return float64(s.LostWrites.Lost)
	}
	return 0
}

func (s *Summary) countOrRate(agg string, n int64) float64 {
	if agg == "rate" {
		if s.DurationS <= 0 {
			return 0
		}
		return float64(n) / s.DurationS
	}
	return float64(n)
}

func (s *Summary) hitRatio(tags map[string]string) float64 {
	r := s.Cache
	if typ, ok := tags["type"]; ok {
		if c := s.Types[typ].Cache; c != nil {
			r = *c
		} else {
			r = HitRatios{}
		}
	}
	switch tags["tier"] {
	case "l1":
		return r.L1
	case "l2":
		return r.L2
	case "origin", "db":
		return r.Origin
	case "failsafe":
		return r.FailSafe
	}
	return r.L1 + r.L2 // "hit" or no tier: served by any cache
}

func (p Percentiles) agg(agg string, pct float64) float64 {
	if p.Count == 0 {
		return 0
	}
	switch agg {
	case "avg":
		return p.Avg
	case "min":
		return p.Min
	case "med":
		return p.Med
	case "max":
		return p.Max
	case "count":
		return float64(p.Count)
	}
	switch pct {
	case 50:
		return p.Med
	case 90:
		return p.P90
	case 95:
		return p.P95
	case 99:
		return p.P99
	case 99.9:
		return p.P999
	}
	return p.quantile(pct)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// WriteJSON writes the summary, indented.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteJSONFile writes the summary to path.
func (s *Summary) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if err := s.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("loadtest: %w", err)
	}
	return f.Close()
}

// WriteText prints the end-of-test summary for a terminal.
func (s *Summary) WriteText(w io.Writer) {
	line := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %s%s %s\n", name, strings.Repeat(".", max(2, 24-len(name))), fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "\n  scenario: %s (%s, up to %d VUs, %.1fs, %d targets, %d keys)\n",
		s.Scenario, s.Executor, s.VUsMax, s.DurationS, len(s.Targets), s.KeySpace)
	if s.Interrupted {
		fmt.Fprintln(w, "  interrupted: the figures cover the part that ran")
	}
	fmt.Fprintln(w)
	line("http_reqs", "%d  %.1f/s", s.Requests, s.RPS)
	line("http_req_duration", "%s", s.Latency)
	for _, name := range s.typeNames() {
		ts := s.Types[name]
		line("  {type:"+name+"}", "%s", ts.Latency)
	}
	line("http_req_failed", "%.2f%%  %d of %d", 100*s.FailRate, s.Failed, s.Requests)
	if s.Failed > 0 {
		line("  by status", "%s", CountsText(s.Failures.ByStatus))
		line("  by transport error", "%s", CountsText(s.Failures.ByCause))
		line("  by target", "%s", CountsText(s.Failures.ByTarget))
		for i, e := range s.Failures.Examples {
			if i == 3 {
				break
			}
			line("  e.g.", "%s", e)
		}
	}
	line("status codes", "%s", CountsText(s.StatusCodes))
	line("checks", "%.2f%%  %d of %d", 100*s.Checks.Rate, s.Checks.Passes, s.Checks.Passes+s.Checks.Fails)
	line("iterations", "%d  dropped %d", s.Iterations, s.Dropped)
	if s.Cache.Classified > 0 {
		line("cache (reads)", "l1 %.1f%%  l2 %.1f%%  origin %.1f%%  collapsed %d", 100*s.Cache.L1, 100*s.Cache.L2, 100*s.Cache.Origin, s.Collapsed)
		if s.Cache.FailSafeServed > 0 {
			line("  stale-if-error served", "%.1f%%  %d (labelled, not hits)", 100*s.Cache.FailSafe, s.Cache.FailSafeServed)
		}
		for _, tier := range []string{"l1", "l2", "origin", "failsafe"} {
			if p, ok := s.TierLatency[tier]; ok {
				line("  get from "+tier, "%s", p)
			}
		}
	} else {
		line("cache (reads)", "no Cache-Status on %d reads", s.Cache.Unknown)
	}
	if c := s.CPU; c.Replicas.Measured || c.Redis.Measured || c.Postgres.Measured {
		line("cpu_per_request", "%s", c.Text())
	}
	if rc := s.RedisCommands; rc.Measured {
		line("redis_us_per_request", "%s", rc.Text())
	}
	if s.DB.Available {
		line("db_queries", "%d  %.1f/s  %.4f/req", s.DB.Total, s.DB.PerS, s.DB.PerReq)
	} else {
		line("db_queries", "n/a (not every target answered /metrics)")
	}
	if f := s.FailSafe; f.OptIn+f.Served > 0 {
		line("failsafe", "%d labelled stale answers (oldest %ds, allowance %ds; %d to reads that did not opt in, %d older than allowed); failed: %d of %d opted-in reads, %d of %d others",
			f.Served, f.MaxAgeS, f.AllowanceS, f.Unrequested, f.OverAllowance, f.OptInFailed, f.OptIn, f.OtherFailed, f.OtherReads)
	}
	if c := s.Consistency; c.Enabled {
		line("stale_reads", "%d of %d reads after a write (%d ids, grace %.0fms; %d old within grace; worst %.1fms)",
			c.StaleReads, c.ReadsAfterWrite, c.SampledIDs, c.GraceMs, c.WithinGrace, c.MaxStalenessMs)
		if c.LabelledReads > 0 {
			line("  labelled, not counted", "%d older versions among %d reads labelled stale-if-error", c.LabelledStale, c.LabelledReads)
		}
		if c.StaleReads+c.WithinGrace > 0 {
			line("  old reads by window", "%s", c.bucketText())
		}
	}
	if l := s.LostWrites; l.Enabled {
		db := "targets"
		if l.Database {
			db = "targets and database"
		}
		line("lost_writes", "%d of %d ids written (%d acknowledged writes, read back from %s; %d missing, %d older, %d deletes undone; %d unverified; %d gone after an unanswered delete; settled in %.0fms)",
			l.Lost, l.IDs, l.Writes, db, l.Missing, l.Backwards, l.Reappeared, l.Unverified, l.UnansweredDeletes, l.SettleMs)
		for _, e := range l.Examples {
			line("  lost", "%s", e)
		}
	}
	if len(s.Thresholds) > 0 {
		fmt.Fprintln(w, "\n  thresholds:")
		for _, t := range s.Thresholds {
			mark := "✓"
			if !t.OK {
				mark = "✗"
			}
			fmt.Fprintf(w, "    %s %s (actual %.6g)\n", mark, t.Threshold, t.Actual)
		}
	}
	fmt.Fprintln(w)
}

// bucketText lists the non-empty staleness buckets: "<=10ms:3 <=50ms:12".
func (c ProbeResult) bucketText() string {
	var parts []string
	for _, b := range c.Buckets {
		if b.Count == 0 {
			continue
		}
		le := ">30s"
		if b.LeMs > 0 {
			le = "<=" + FormatMs(b.LeMs)
		}
		parts = append(parts, fmt.Sprintf("%s:%d", le, b.Count))
	}
	return strings.Join(parts, "  ")
}

func (s *Summary) typeNames() []string {
	names := make([]string, 0, len(s.Types))
	for n := range s.Types {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return typeOrder(names[i]) < typeOrder(names[j]) })
	return names
}

func typeOrder(name string) int {
	for i, n := range reqTypeNames {
		if n == name {
			return i
		}
	}
	return len(reqTypeNames)
}

// String formats the percentiles k6-style.
func (p Percentiles) String() string {
	return fmt.Sprintf("avg=%s min=%s med=%s p(90)=%s p(95)=%s p(99)=%s max=%s",
		FormatMs(p.Avg), FormatMs(p.Min), FormatMs(p.Med), FormatMs(p.P90), FormatMs(p.P95), FormatMs(p.P99), FormatMs(p.Max))
}

// FormatMs prints milliseconds for a person: 1.23s, 4.56ms, 789µs.
func FormatMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 1:
		return fmt.Sprintf("%.2fms", v)
	}
	return fmt.Sprintf("%.0fµs", v*1000)
}

// CountsText lists counts by name, sorted: "200:1234  503:2"; "none" when
// there are none.
func CountsText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, "  ")
}
