package loadtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// dbCounterName is the productsd counter of database queries, labelled op;
// cpuCounterName the process collector's CPU time.
const (
	dbCounterName  = "productsd_db_queries_total"
	cpuCounterName = "process_cpu_seconds_total"
)

// dbSnapshot is each target's productsd_db_queries_total by op; a target
// missing from the map did not answer /metrics.
type dbSnapshot map[string]map[string]float64

// snapshotTargets reads every target's /metrics once: its database
// queries, and its CPU seconds when it exports them.
func snapshotTargets(ctx context.Context, client *http.Client, targets []string) (dbSnapshot, map[string]float64) {
	snap, cpu := dbSnapshot{}, map[string]float64{}
	for _, t := range targets {
		b, ok := fetchMetrics(ctx, client, t)
		if !ok {
			continue
		}
		families, _ := parseMetrics(b)                 // nil when it does not parse
		snap[t] = sumBy(families[dbCounterName], "op") // a counter not yet exported has counted nothing
		if mf, ok := families[cpuCounterName]; ok {
			cpu[t] = sumBy(mf, "")[""]
		}
	}
	return snap, cpu
}

// TargetCounters reads target's /metrics once and returns, for each of
// names, the sum of its samples (0 for a metric the target does not
// export); false when the target did not answer or the text did not parse.
func TargetCounters(ctx context.Context, client *http.Client, target string, names ...string) (map[string]float64, bool) {
	b, ok := fetchMetrics(ctx, client, target)
	if !ok {
		return nil, false
	}
	families, ok := parseMetrics(b)
	if !ok {
		return nil, false
	}
	sums := make(map[string]float64, len(names))
	for _, n := range names {
		sums[n] = sumBy(families[n], "")[""]
	}
	return sums, true
}

func fetchMetrics(ctx context.Context, client *http.Client, target string) ([]byte, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/metrics", nil)
	if err != nil {
		return nil, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return b, err == nil
}

// parseMetrics reads the Prometheus text format (expfmt) into its metric
// families, by name; false when the text does not parse.
func parseMetrics(b []byte) (map[string]*dto.MetricFamily, bool) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(b))
	return families, err == nil
}

// sumBy returns the samples of mf, a counter, untyped metric or gauge,
// summed by the value of one label; nil (a metric not exported) gives an
// empty map.
func sumBy(mf *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var key string
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				key = lp.GetValue()
			}
		}
		switch {
		case m.Counter != nil:
			out[key] += m.GetCounter().GetValue()
		case m.Untyped != nil:
			out[key] += m.GetUntyped().GetValue()
		case m.Gauge != nil:
			out[key] += m.GetGauge().GetValue()
		}
	}
	return out
}

// dbDelta subtracts snapshots; seeding is not a query the workload caused.
func dbDelta(before, after dbSnapshot, reqs int64, secs float64) DBQueries {
	q := DBQueries{Available: len(after) > 0, ByOp: map[string]int64{}, ByTarget: map[string]int64{}}
	for t, a := range after {
		b, ok := before[t]
		if !ok {
			q.Available = false
			continue
		}
		for op, v := range a {
			if op == "seed" {
				continue
			}
			d := int64(v - b[op])
			q.ByOp[op] += d
			q.ByTarget[t] += d
			q.Total += d
		}
	}
	if len(after) < len(before) {
		q.Available = false
	}
	q.PerReq = ratio(q.Total, reqs)
	if secs > 0 {
		q.PerS = float64(q.Total) / secs
	}
	return q
}
