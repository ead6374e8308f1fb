package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
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
		snap[t], _ = parseCounter(bytes.NewReader(b), dbCounterName, "op") // a counter not yet exported has counted nothing
		if c, ok := parseCounter(bytes.NewReader(b), cpuCounterName, ""); ok {
			cpu[t] = c[""]
		}
	}
	return snap, cpu
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

// parseCounter reads the Prometheus text format and returns the samples of
// one counter by the value of one label. It reports false if the counter
// never appears.
func parseCounter(r io.Reader, name, label string) (map[string]float64, bool) {
	out := map[string]float64{}
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		found = true
		out[labelValue(labels, label)] += v
	}
	return out, found
}

// labelValue finds key="value" in a Prometheus label set.
func labelValue(labels, key string) string {
	for labels != "" {
		k, rest, ok := strings.Cut(labels, "=")
		if !ok || len(rest) == 0 || rest[0] != '"' {
			return ""
		}
		var val strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			val.WriteByte(rest[i])
		}
		if strings.TrimSpace(k) == key {
			return val.String()
		}
		labels = strings.TrimLeft(rest[min(i+1, len(rest)):], ", ")
	}
	return ""
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
