package loadtest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// K6SummaryExport returns the summary in the shape of k6's
// --summary-export file, so that dashboards and CI scripts written for k6
// read it: a "metrics" map keyed by metric name (a submetric as
// name{tag:value}), trends in milliseconds with avg, min, med, max, p(90)
// and p(95), counters with count and rate (per second), rates with
// passes, fails and value, gauges with value, min and max; a metric with
// thresholds carries "thresholds", each source mapped to whether it
// failed, as k6 writes it; and "root_group" with the run's check.
//
// Besides k6's own metrics (http_reqs, http_req_duration, http_req_failed,
// checks, iterations, dropped_iterations, vus, vus_max) it has this tool's:
// stale_reads, staleness, db_queries, cache_hit_ratio{tier:...},
// lost_writes and cpu_per_request{component:...}.
func (s *Summary) K6SummaryExport() map[string]any {
	m := map[string]map[string]any{}
	dur := s.DurationS
	counter := func(n int64) map[string]any {
		rate := 0.0
		if dur > 0 {
			rate = float64(n) / dur
		}
		return map[string]any{"count": n, "rate": rate}
	}
	trend := func(p Percentiles) map[string]any {
		return map[string]any{"avg": p.Avg, "min": p.Min, "med": p.Med, "max": p.Max, "p(90)": p.P90, "p(95)": p.P95}
	}
	rate := func(passes, total int64) map[string]any {
		return map[string]any{"passes": passes, "fails": total - passes, "value": ratio(passes, total)}
	}
	gauge := func(v float64) map[string]any { return map[string]any{"value": v, "min": v, "max": v} }

	m["http_reqs"] = counter(s.Requests)
	m["http_req_duration"] = trend(s.Latency)
	m["http_req_failed"] = rate(s.Failed, s.Requests)
	m["checks"] = rate(s.Checks.Passes, s.Checks.Passes+s.Checks.Fails)
	m["iterations"] = counter(s.Iterations)
	m["dropped_iterations"] = counter(s.Dropped)
	m["vus"] = map[string]any{"value": s.VUsMax, "min": 0, "max": s.VUsMax}
	m["vus_max"] = gauge(float64(s.VUsMax))
	for typ, ts := range s.Types {
		m["http_req_duration{type:"+typ+"}"] = trend(ts.Latency)
		m["http_reqs{type:"+typ+"}"] = counter(ts.Requests)
		m["http_req_failed{type:"+typ+"}"] = rate(ts.Failed, ts.Requests)
	}
	if c := s.Consistency; c.Enabled {
		m["stale_reads"] = counter(c.StaleReads)
		st := trend(c.Staleness)
		st["max"] = c.MaxStalenessMs
		m["staleness"] = st
	}
	if s.DB.Available {
		db := counter(s.DB.Total)
		db["per_req"] = s.DB.PerReq
		m["db_queries"] = db
	}
	if c := s.Cache; c.Classified > 0 {
		for tier, v := range map[string]float64{"l1": c.L1, "l2": c.L2, "origin": c.Origin} {
			m["cache_hit_ratio{tier:"+tier+"}"] = map[string]any{"value": v}
		}
	}
	m["lost_writes"] = counter(int64(s.LostWrites.Lost))
	for name, p := range map[string]CPUPart{"replicas": s.CPU.Replicas, "redis": s.CPU.Redis, "postgres": s.CPU.Postgres} {
		if p.Measured {
			m["cpu_per_request{component:"+name+"}"] = gauge(p.USPerReq)
		}
	}
	if s.CPU.Complete {
		m["cpu_per_request{component:total}"] = gauge(s.CPU.TotalUSPerReq)
	}
	s.exportThresholds(m)

	return map[string]any{"root_group": s.rootGroup(), "metrics": m}
}

// exportThresholds attaches every threshold to its metric, keyed by its
// condition: true when it failed, k6's convention.
func (s *Summary) exportThresholds(m map[string]map[string]any) {
	for _, r := range s.Thresholds {
		src := strings.TrimSuffix(r.Threshold, " (built in)")
		parts := thresholdRE.FindStringSubmatch(src)
		if parts == nil {
			continue
		}
		key := strings.ReplaceAll(parts[1]+parts[2], " ", "")
		entry, ok := m[key]
		if !ok {
			entry = map[string]any{"value": r.Actual}
			m[key] = entry
		}
		ths, _ := entry["thresholds"].(map[string]bool)
		if ths == nil {
			ths = map[string]bool{}
			entry["thresholds"] = ths
		}
		ths[strings.TrimSpace(parts[3])] = !r.OK
	}
}

// rootGroup is k6's root group: no name, no subgroups, and the run's one
// check (the status code is the expected one, and a read carries a
// version), with its passes and fails.
func (s *Summary) rootGroup() map[string]any {
	const check = "status is as expected and reads carry a version"
	return map[string]any{
		"name": "", "path": "", "id": md5Hex(""),
		"groups": map[string]any{},
		"checks": map[string]any{check: map[string]any{
			"name": check, "path": "::" + check, "id": md5Hex("::" + check),
			"passes": s.Checks.Passes, "fails": s.Checks.Fails,
		}},
	}
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// WriteK6SummaryExport writes [Summary.K6SummaryExport] to path.
func (s *Summary) WriteK6SummaryExport(path string) error {
	b, err := json.MarshalIndent(s.K6SummaryExport(), "", "    ")
	if err != nil {
		return fmt.Errorf("loadtest: summary export: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("loadtest: summary export: %w", err)
	}
	return nil
}
