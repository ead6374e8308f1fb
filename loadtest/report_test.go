package loadtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLogChart: the latency chart's axis has one line per power of ten
// from below the smallest value to above the largest, a zero sits on the
// bottom line, and the chart has no fixed width (the page scales it).
func TestLogChart(t *testing.T) {
	t.Parallel()
	svg := string(svgLogChart("Latency", []float64{1, 2, 3},
		[]chartLine{{"p50", "#000", []float64{0.2, 0, 0.4}}, {"p99", "#111", []float64{3, 40, 8}}}))
	for _, label := range []string{">0.1<", ">1<", ">10<", ">100<"} {
		if !strings.Contains(svg, label) {
			t.Errorf("axis lacks %s:\n%s", label, svg)
		}
	}
	if strings.Contains(svg, ">1000<") || strings.Contains(svg, ">0.01<") {
		t.Errorf("axis wider than the data:\n%s", svg)
	}
	if bottom := fmt.Sprintf(",%.1f ", chartH-padB); !strings.Contains(svg, bottom) {
		t.Errorf("a zero is not on the bottom line (%q):\n%s", bottom, svg)
	}
	if strings.Contains(svg, `width="`+fmt.Sprint(chartW)) {
		t.Errorf("chart has a fixed width:\n%s", svg)
	}
}

// TestHTMLPerReplica: the report has a row per target with its failures,
// database queries and CPU seconds.
func TestHTMLPerReplica(t *testing.T) {
	t.Parallel()
	s := &Summary{Targets: []string{"http://a", "http://b"},
		Failures: Failures{ByTarget: map[string]int64{"http://b": 3}},
		DB:       DBQueries{Available: true, ByTarget: map[string]int64{"http://a": 7, "http://b": 9}},
		CPU:      CPU{ByTarget: map[string]float64{"http://a": 1.25, "http://b": 2.5}, Replicas: CPUPart{Measured: true, USPerReq: 12}},
	}
	var b strings.Builder
	if err := WriteHTML(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<td>a</td><td>0</td><td>7</td><td>1.25</td>", "<td>b</td><td>3</td><td>9</td><td>2.50</td>", "replicas 12.0µs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// The per-replica view over time: the collector counts each interval's
// requests and failures by target, and the report draws a line per
// replica, with failures only when some failed.
func TestPerReplicaSeries(t *testing.T) {
	t.Parallel()
	start := time.Unix(0, 0)
	c := newCollector(2, start)
	for i := range 10 {
		c.shard(i).add(sample{typ: ReqGet, latency: time.Millisecond, target: "http://a"})
	}
	c.shard(0).add(sample{typ: ReqGet, latency: time.Millisecond, target: "http://b", failed: true})
	p1 := c.tick(start.Add(time.Second), 1)
	c.shard(1).add(sample{typ: ReqGet, latency: time.Millisecond, target: "http://b"})
	p2 := c.tick(start.Add(2*time.Second), 1)
	if got := p1.ByTarget; got["http://a"] != (TargetPoint{Requests: 10}) || got["http://b"] != (TargetPoint{Requests: 1, Errors: 1}) {
		t.Fatalf("first interval by target: got %+v", got)
	}
	if got := p2.ByTarget; len(got) != 1 || got["http://b"] != (TargetPoint{Requests: 1}) {
		t.Fatalf("second interval by target: got %+v, want only b's one request", got)
	}
	s := &Summary{Targets: []string{"http://a", "http://b"}, Series: []Point{p1, p2}}
	var b strings.Builder
	if err := WriteHTML(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Requests per second by replica", "Failed requests per interval by replica"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	b.Reset()
	if err := WriteHTML(&b, &Summary{Targets: []string{"http://a"}, Series: []Point{p1, p2}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "by replica") {
		t.Error("a single target got per-replica charts")
	}
}

// TestReportsFailSafe: the text summary and the HTML report show the
// labelled stale answers as their own class, apart from the stale reads.
func TestReportsFailSafe(t *testing.T) {
	t.Parallel()
	s := &Summary{
		Cache:       HitRatios{L1: 0.5, L2: 0.3, Origin: 0.1, FailSafe: 0.1, Classified: 10, FailSafeServed: 1},
		FailSafe:    FailSafe{AllowanceS: 60, OptIn: 6, OptInFailed: 1, OtherReads: 4, OtherFailed: 2, Served: 1, MaxAgeS: 7},
		Consistency: ProbeResult{Enabled: true, LabelledReads: 1, LabelledStale: 1},
	}
	var text strings.Builder
	s.WriteText(&text)
	for _, want := range []string{"stale-if-error served", "1 labelled stale answers (oldest 7s, allowance 60s; 0 to reads that did not opt in, 0 older than allowed); failed: 1 of 6 opted-in reads, 2 of 4 others",
		"1 older versions among 1 reads labelled stale-if-error"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
	var html strings.Builder
	if err := WriteHTML(&html, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stale-if-error served (labelled)", "1 of 6 opted-in reads failed, 2 of 4 others", "not counted: 1 older versions among 1 reads labelled"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
