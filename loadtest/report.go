package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strings"
)

// WriteHTML writes a self-contained report of s: the summary tables and
// inline SVG charts over time of throughput, latency percentiles (p50, p95,
// p99) and the hit ratio of each tier. It fetches nothing from anywhere.
func WriteHTML(w io.Writer, s *Summary) error {
	series := chartSeries(s.Series)
	xs := make([]float64, len(series))
	col := func(f func(Point) float64) []float64 {
		ys := make([]float64, len(series))
		for i, p := range series {
			ys[i] = f(p)
		}
		return ys
	}
	for i, p := range series {
		xs[i] = p.T
	}
	data := struct {
		S       *Summary
		Charts  []template.HTML
		Types   []string
		Buckets string
		Tiers   []string
	}{S: s, Types: s.typeNames(), Buckets: s.Consistency.bucketText(), Tiers: []string{"l1", "l2", "origin", "failsafe"}}
	data.Charts = []template.HTML{
		svgChart("Throughput (requests/s)", xs, 0, []chartLine{
			{"requests/s", "#2563eb", col(func(p Point) float64 { return p.RPS })},
			{"errors/interval", "#dc2626", col(func(p Point) float64 { return float64(p.Errors) })},
		}),
		svgLogChart("Latency (ms, log scale)", xs, []chartLine{
			{"p50", "#16a34a", col(func(p Point) float64 { return p.P50 })},
			{"p95", "#ca8a04", col(func(p Point) float64 { return p.P95 })},
			{"p99", "#dc2626", col(func(p Point) float64 { return p.P99 })},
		}),
		svgChart("Reads answered per tier (ratio)", xs, 1, []chartLine{
			{"L1", "#2563eb", col(func(p Point) float64 { return p.L1 })},
			{"L2", "#9333ea", col(func(p Point) float64 { return p.L2 })},
			{"origin (db)", "#ea580c", col(func(p Point) float64 { return p.Origin })},
		}),
		svgChart("Active VUs", xs, 0, []chartLine{
			{"VUs", "#475569", col(func(p Point) float64 { return float64(p.VUs) })},
		}),
	}
	if len(series) > 0 && series[0].DBQueries >= 0 {
		prev := 0.0
		data.Charts = append(data.Charts, svgChart("Database queries per second", xs, 0, []chartLine{
			{"queries/s", "#ea580c", col(func(p Point) float64 {
				dt := p.T - prev
				prev = p.T
				if p.DBQueries < 0 || dt <= 0 {
					return 0
				}
				return float64(p.DBQueries) / dt
			})},
		}))
	}
	data.Charts = append(data.Charts, targetCharts(s.Targets, series, xs)...)
	data.Charts = append(data.Charts, probeCharts(s.Consistency)...)
	return reportTmpl.Execute(w, data)
}

// hostOf shows a target without its scheme: the report names no URL (it
// must never look like it loads one).
func hostOf(u string) string {
	if _, rest, ok := strings.Cut(u, "://"); ok {
		return rest
	}
	return u
}

// targetColors tell up to eight replicas apart; more reuse them.
var targetColors = []string{"#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#475569"}

// targetCharts draws the per-replica view over time: requests per second
// of each target, and its failed requests per interval when any failed
// (a killed replica shows as its line dropping to zero and its failures
// rising). None with a single target.
func targetCharts(targets []string, series []Point, xs []float64) []template.HTML {
	if len(targets) < 2 || len(series) == 0 {
		return nil
	}
	var rps, errs []chartLine
	anyErr := false
	for i, t := range targets {
		color := targetColors[i%len(targetColors)]
		r, e := make([]float64, len(series)), make([]float64, len(series))
		prev := 0.0
		for j, p := range series {
			tp := p.ByTarget[t]
			if dt := p.T - prev; dt > 0 {
				r[j] = float64(tp.Requests) / dt
			}
			prev = p.T
			e[j] = float64(tp.Errors)
			anyErr = anyErr || tp.Errors > 0
		}
		rps = append(rps, chartLine{hostOf(t), color, r})
		errs = append(errs, chartLine{hostOf(t), color, e})
	}
	out := []template.HTML{svgChart("Requests per second by replica", xs, 0, rps)}
	if anyErr {
		out = append(out, svgChart("Failed requests per interval by replica", xs, 0, errs))
	}
	return out
}

// probeCharts draws, per second, the reads that returned an older
// version (stale: beyond the grace window) and the largest gap from the
// acknowledgement that made a read's version old: the invalidation lag
// readers saw. None without the probe.
func probeCharts(c ProbeResult) []template.HTML {
	if !c.Enabled || len(c.Series) == 0 {
		return nil
	}
	xs, stale, grace, gap := make([]float64, len(c.Series)), make([]float64, len(c.Series)), make([]float64, len(c.Series)), make([]float64, len(c.Series))
	for i, p := range c.Series {
		xs[i], stale[i], grace[i], gap[i] = p.T, float64(p.StaleReads), float64(p.WithinGrace), p.MaxGapMs
	}
	return []template.HTML{
		svgChart("Reads of an older version per second", xs, 0, []chartLine{
			{"stale (beyond the grace window)", "#dc2626", stale},
			{"within the grace window", "#ca8a04", grace},
		}),
		svgLogChart("Invalidation lag seen by readers (ms, largest per second, log scale)", xs, []chartLine{
			{"acknowledgement to last old read", "#9333ea", gap},
		}),
	}
}

// chartSeries leaves out the last point when it covers less than half an
// interval: the few requests that finished after the last full interval
// would draw a misleading spike. The JSON summary keeps it.
func chartSeries(ps []Point) []Point {
	n := len(ps)
	if n < 3 {
		return ps
	}
	full := ps[n-2].T - ps[n-3].T
	if ps[n-1].T-ps[n-2].T < full/2 {
		return ps[:n-1]
	}
	return ps
}

// WriteHTMLFile writes the report to path.
func WriteHTMLFile(path string, s *Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if err := WriteHTML(f, s); err != nil {
		f.Close()
		return fmt.Errorf("loadtest: %w", err)
	}
	return f.Close()
}

type chartLine struct {
	name, color string
	ys          []float64
}

// The charts' coordinate space; the page scales them to its width.
const (
	chartW, chartH         = 1200.0, 260.0
	padL, padR, padT, padB = 64.0, 16.0, 28.0, 44.0
)

// svgChart draws lines over a shared x axis (seconds) on a linear y axis.
// yMax 0 scales to the data. Only numbers and fixed labels go into the
// markup.
func svgChart(title string, xs []float64, yMax float64, lines []chartLine) template.HTML {
	if yMax == 0 {
		for _, l := range lines {
			for _, y := range l.ys {
				yMax = math.Max(yMax, y)
			}
		}
		yMax = niceCeil(yMax * 1.05)
	}
	var grid []float64
	for i := 0; i <= 4; i++ {
		grid = append(grid, yMax*float64(i)/4)
	}
	return drawChart(title, xs, lines, grid, func(y float64) float64 { return math.Min(y, yMax) / yMax })
}

// svgLogChart is svgChart on a logarithmic y axis, one grid line per
// power of ten, so that a median of a tenth of a millisecond and a tail
// of a hundred both show their shape. Values at or below zero sit on the
// bottom line.
func svgLogChart(title string, xs []float64, lines []chartLine) template.HTML {
	lo, hi := math.Inf(1), 0.0
	for _, l := range lines {
		for _, y := range l.ys {
			if y > 0 {
				lo, hi = math.Min(lo, y), math.Max(hi, y)
			}
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi <= dLo {
		dHi = dLo + 1
	}
	var grid []float64
	for d := dLo; d <= dHi; d++ {
		grid = append(grid, math.Pow(10, d))
	}
	frac := func(y float64) float64 {
		if y <= 0 {
			return 0
		}
		return math.Max(0, math.Min(1, (math.Log10(y)-dLo)/(dHi-dLo)))
	}
	return drawChart(title, xs, lines, grid, frac)
}

// drawChart draws lines whose y values frac maps to 0..1 of the height,
// with labelled grid lines at grid.
func drawChart(title string, xs []float64, lines []chartLine, grid []float64, frac func(float64) float64) template.HTML {
	xMax := 1.0
	if len(xs) > 0 {
		xMax = math.Max(xs[len(xs)-1], 1)
	}
	px := func(x float64) float64 { return padL + x/xMax*(chartW-padL-padR) }
	py := func(y float64) float64 { return chartH - padB - frac(y)*(chartH-padT-padB) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="16" class="t">%s</text>`, padL, template.HTMLEscapeString(title))
	for _, y := range grid {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" class="g"/><text x="%.1f" y="%.1f" class="yl">%s</text>`,
			padL, chartW-padR, py(y), py(y), padL-6, py(y)+4, fmtNum(y))
	}
	step := niceCeil(xMax / 6)
	for i := 0; float64(i)*step <= xMax; i++ {
		x := float64(i) * step
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="xl">%.3gs</text>`, px(x), chartH-padB+16, x)
	}
	for i, l := range lines {
		var pts strings.Builder
		for j, y := range l.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[j]), py(y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, l.color, pts.String())
		lx := padL + float64(i)*130
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="4" fill="%s"/><text x="%.0f" y="%.0f" class="lg">%s</text>`,
			lx, chartH-14, l.color, lx+16, chartH-9, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":    func(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) },
	"ms":     FormatMs,
	"counts": CountsText,
	"host":   hostOf,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>loadtest report: {{.S.Scenario}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#0f172a}
table{border-collapse:collapse;margin:8px 0 20px}td,th{padding:3px 10px;border-bottom:1px solid #e2e8f0;text-align:right}
th:first-child,td:first-child{text-align:left}.ok{color:#16a34a}.fail{color:#dc2626;font-weight:bold}
svg{display:block;margin:12px 0;background:#f8fafc;border:1px solid #e2e8f0;width:100%;height:auto}
.g{stroke:#e2e8f0}.t{font-weight:bold;font-size:13px}.yl{text-anchor:end;font-size:11px;fill:#475569}
.xl{text-anchor:middle;font-size:11px;fill:#475569}.lg{font-size:11px}
</style></head><body>
<h1>loadtest: {{.S.Scenario}}</h1>
<p>{{.S.Executor}}, up to {{.S.VUsMax}} VUs, {{printf "%.1f" .S.DurationS}}s from {{.S.Start.Format "2006-01-02 15:04:05 MST"}},
{{len .S.Targets}} targets, {{.S.KeySpace}} keys.</p>
<table>
<tr><th>requests</th><td>{{.S.Requests}} ({{printf "%.1f" .S.RPS}}/s)</td></tr>
<tr><th>failed</th><td>{{pct .S.FailRate}} ({{.S.Failed}})</td></tr>
<tr><th>checks</th><td>{{pct .S.Checks.Rate}}</td></tr>
<tr><th>dropped iterations</th><td>{{.S.Dropped}}</td></tr>
<tr><th>reads from L1 / L2 / origin</th><td>{{pct .S.Cache.L1}} / {{pct .S.Cache.L2}} / {{pct .S.Cache.Origin}}</td></tr>
{{with .S.FailSafe}}{{if or .OptIn .Served}}<tr><th>stale-if-error served (labelled)</th><td class="{{if or .Unrequested .OverAllowance}}fail{{else}}ok{{end}}">{{.Served}}
(oldest {{.MaxAgeS}}s; {{.Unrequested}} to reads that did not opt in, {{.OverAllowance}} older than allowed);
{{.OptInFailed}} of {{.OptIn}} opted-in reads failed, {{.OtherFailed}} of {{.OtherReads}} others</td></tr>{{end}}{{end}}
<tr><th>database queries</th><td>{{if .S.DB.Available}}{{.S.DB.Total}} ({{printf "%.4f" .S.DB.PerReq}} per request){{else}}n/a{{end}}</td></tr>
{{if .S.Consistency.Enabled}}<tr><th>stale reads</th><td>{{.S.Consistency.StaleReads}} of {{.S.Consistency.ReadsAfterWrite}} reads after a write
(grace {{.S.Consistency.GraceMs}}ms, worst {{printf "%.1f" .S.Consistency.MaxStalenessMs}}ms, {{.S.Consistency.WithinGrace}} old within grace{{if .S.Consistency.LabelledReads}};
not counted: {{.S.Consistency.LabelledStale}} older versions among {{.S.Consistency.LabelledReads}} reads labelled stale-if-error{{end}})</td></tr>
{{if .Buckets}}<tr><th>old reads by time after the write's ack</th><td>{{.Buckets}}</td></tr>{{end}}{{end}}
{{if .S.LostWrites.Enabled}}{{with .S.LostWrites}}<tr><th>lost acknowledged writes</th><td class="{{if .Lost}}fail{{else}}ok{{end}}">{{.Lost}} of {{.IDs}} ids written
({{.Missing}} missing, {{.Backwards}} older, {{.Reappeared}} deletes undone; {{.Unverified}} unverified; {{.UnansweredDeletes}} gone after an unanswered delete{{if .Database}}; database read too{{end}})</td></tr>{{end}}{{end}}
</table>
<h2>Status codes and failures</h2>
<table><tr><th>status codes</th><td>{{counts .S.StatusCodes}}</td></tr>
<tr><th>failures by status</th><td>{{counts .S.Failures.ByStatus}}</td></tr>
<tr><th>failures by transport error</th><td>{{counts .S.Failures.ByCause}}</td></tr>
<tr><th>failures by target</th><td>{{counts .S.Failures.ByTarget}}</td></tr></table>
<h2>Per replica</h2>
<table><tr><th>target</th><th>failed requests</th><th>database queries</th><th>CPU seconds</th></tr>
{{range $t := .S.Targets}}<tr><td>{{host $t}}</td><td>{{index $.S.Failures.ByTarget $t}}</td><td>{{if $.S.DB.Available}}{{index $.S.DB.ByTarget $t}}{{else}}n/a{{end}}</td><td>{{with $.S.CPU.ByTarget}}{{printf "%.2f" (index . $t)}}{{else}}n/a{{end}}</td></tr>
{{end}}</table>
{{if .S.CPU.Replicas.Measured}}<p>CPU per request: {{.S.CPU.Text}}</p>{{end}}
{{if .S.RedisCommands.Measured}}<table><tr><th>Redis commands</th><th>calls</th><th>µs per request</th><th>µs per call</th></tr>
{{range .S.RedisCommands.Families}}<tr><td>{{.Name}}{{if .Nested}}*{{end}}</td><td>{{.Calls}}</td><td>{{printf "%.2f" .USPerReq}}</td><td>{{printf "%.2f" .USPerCall}}</td></tr>
{{end}}</table><p>{{.S.RedisCommands.Note}}</p>{{end}}
{{with .S.LostWrites.Examples}}<h2>Lost writes</h2><table><tr><th>id</th><th>where</th><th>acknowledged</th><th>seen</th></tr>
{{range .}}<tr><td>{{.ID}}</td><td>{{.Where}}</td><td>{{if .Deleted}}delete{{else}}version {{.Acked}}{{end}} at {{printf "%.0f" .AckMs}}ms</td><td>{{.Seen}}</td></tr>{{end}}</table>{{end}}
<h2>Latency</h2>
<table><tr><th>type</th><th>requests</th><th>failed</th><th>avg</th><th>med</th><th>p95</th><th>p99</th><th>max</th></tr>
<tr><td>all</td><td>{{.S.Requests}}</td><td>{{.S.Failed}}</td><td>{{ms .S.Latency.Avg}}</td><td>{{ms .S.Latency.Med}}</td><td>{{ms .S.Latency.P95}}</td><td>{{ms .S.Latency.P99}}</td><td>{{ms .S.Latency.Max}}</td></tr>
{{range $name := .Types}}{{with index $.S.Types $name}}<tr><td>{{$name}}</td><td>{{.Requests}}</td><td>{{.Failed}}</td><td>{{ms .Latency.Avg}}</td><td>{{ms .Latency.Med}}</td><td>{{ms .Latency.P95}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.Max}}</td></tr>
{{end}}{{end}}{{range $tier := .Tiers}}{{with index $.S.TierLatency $tier}}<tr><td>get from {{$tier}}</td><td>{{.Count}}</td><td></td><td>{{ms .Avg}}</td><td>{{ms .Med}}</td><td>{{ms .P95}}</td><td>{{ms .P99}}</td><td>{{ms .Max}}</td></tr>
{{end}}{{end}}</table>
{{if .S.Thresholds}}<h2>Thresholds</h2><table>{{range .S.Thresholds}}<tr><td class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}✓{{else}}✗{{end}} {{.Threshold}}</td><td>{{printf "%.6g" .Actual}}</td></tr>{{end}}</table>{{end}}
<h2>Over time</h2>
{{range .Charts}}{{.}}{{end}}
</body></html>
`))
