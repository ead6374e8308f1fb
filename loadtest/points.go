package loadtest

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"time"
)

// PointStream writes every request as k6's `--out json` does: one JSON
// object per line, a "Metric" line the first time a metric appears, then
// one "Point" line per sample with its time, value and tags. Each request
// gives three points, as k6's HTTP requests do: http_reqs (counter, 1),
// http_req_duration (trend, milliseconds) and http_req_failed (rate, 0 or
// 1), tagged with k6's method, name, status, expected_response and
// scenario, and this tool's type (the request type) and cache (the tier
// that answered, for reads). Tools that read k6's stream (jq recipes,
// k6-to-InfluxDB importers) read this one.
//
// A sample is written under a mutex into a buffered writer; Close flushes.
// The stream is the run's whole record, so it grows by about 700 bytes per
// request.
type PointStream struct {
	mu       sync.Mutex
	w        *bufio.Writer
	scenario string
	declared map[string]bool
	buf      []byte
	err      error
}

// NewPointStream writes points to w for the scenario named scenario.
func NewPointStream(w io.Writer, scenario string) *PointStream {
	return &PointStream{w: bufio.NewWriterSize(w, 64<<10), scenario: scenario, declared: map[string]bool{}}
}

type k6Metric struct {
	Type   string       `json:"type"`
	Data   k6MetricData `json:"data"`
	Metric string       `json:"metric"`
}

type k6MetricData struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Contains   string   `json:"contains"`
	Thresholds []string `json:"thresholds"`
	Submetrics []string `json:"submetrics"`
}

type k6Point struct {
	Type   string      `json:"type"`
	Data   k6PointData `json:"data"`
	Metric string      `json:"metric"`
}

type k6PointData struct {
	Time  time.Time         `json:"time"`
	Value float64           `json:"value"`
	Tags  map[string]string `json:"tags"`
}

// pointMetrics are the metrics each request writes, with k6's type and
// what the value contains.
var pointMetrics = [...]struct{ name, typ, contains string }{
	{"http_reqs", "counter", "default"},
	{"http_req_duration", "trend", "time"},
	{"http_req_failed", "rate", "default"},
}

// reqMethod is the HTTP method of each request type.
var reqMethod = [numReqTypes]string{"GET", "GET", "POST", "PUT", "DELETE", "GET"}

// add writes x, which ended at end, as its three points.
func (p *PointStream) add(end time.Time, x *sample) {
	tags := map[string]string{
		"method": reqMethod[x.typ], "name": x.typ.String(), "type": x.typ.String(),
		"status": strconv.Itoa(x.code), "expected_response": strconv.FormatBool(!x.failed),
		"scenario": p.scenario,
	}
	if x.typ == ReqGet || x.typ == ReqBatch {
		tags["cache"] = x.cache.Tier.String()
	}
	failed := 0.0
	if x.failed {
		failed = 1
	}
	values := [...]float64{1, float64(x.latency) / float64(time.Millisecond), failed}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	for i, m := range pointMetrics {
		if !p.declared[m.name] {
			p.declared[m.name] = true
			p.line(k6Metric{Type: "Metric", Metric: m.name, Data: k6MetricData{
				Name: m.name, Type: m.typ, Contains: m.contains, Thresholds: []string{},
			}})
		}
		p.line(k6Point{Type: "Point", Metric: m.name, Data: k6PointData{Time: end, Value: values[i], Tags: tags}})
	}
}

// line writes v as one line; the first error stops the stream.
func (p *PointStream) line(v any) {
	b, err := json.Marshal(v)
	if err == nil {
		b = append(b, '\n')
		_, err = p.w.Write(b)
	}
	if err != nil && p.err == nil {
		p.err = err
	}
}

// Close flushes the stream and returns the first error writing it.
func (p *PointStream) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	return p.err
}
