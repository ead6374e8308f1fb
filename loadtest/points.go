package loadtest

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
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
// A sample's three lines are appended to a buffer the stream reuses and
// written under a mutex into a buffered writer; Close flushes. The stream
// is the run's whole record, so it grows by about 700 bytes per request,
// and it is written for every request: its lines are appended by hand
// rather than by json.Marshal of a map of tags (about 50 allocations a
// request), and TestPointStreamBytes holds them to what json.Marshal
// writes.
type PointStream struct {
	mu       sync.Mutex
	w        *bufio.Writer
	scenario []byte // the scenario's name as a JSON string
	declared [len(pointMetrics)]bool
	buf      []byte // the lines of the sample being written
	err      error
}

// NewPointStream writes points to w for the scenario named scenario.
func NewPointStream(w io.Writer, scenario string) *PointStream {
	name, _ := json.Marshal(scenario) // a string always marshals
	return &PointStream{w: bufio.NewWriterSize(w, 64<<10), scenario: name}
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

// pointMetrics are the metrics each request writes, with k6's type and
// what the value contains.
var pointMetrics = [...]struct{ name, typ, contains string }{
	{"http_reqs", "counter", "default"},
	{"http_req_duration", "trend", "time"},
	{"http_req_failed", "rate", "default"},
}

// reqMethod is the HTTP method of each request type.
var reqMethod = [numReqTypes]string{"GET", "GET", "POST", "PUT", "DELETE", "GET"}

// add writes x, which ended at end, as its three points: each
// {"type":"Point","data":{"time":…,"value":…,"tags":{…}},"metric":…},
// with the tags in the order json.Marshal gives a map's keys.
func (p *PointStream) add(end time.Time, x *sample) {
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
	b := p.buf[:0]
	for i, m := range pointMetrics {
		if !p.declared[i] {
			p.declared[i] = true
			d, _ := json.Marshal(k6Metric{Type: "Metric", Metric: m.name, Data: k6MetricData{
				Name: m.name, Type: m.typ, Contains: m.contains, Thresholds: []string{},
			}}) // fixed strings always marshal
			b = append(append(b, d...), '\n')
		}
		b = append(b, `{"type":"Point","data":{"time":"`...)
		var err error
		if b, err = end.AppendText(b); err != nil { // a year json.Marshal refuses too
			p.err = err
			return
		}
		b = append(b, `","value":`...)
		b = appendJSONFloat(b, values[i])
		b = append(b, `,"tags":{`...)
		b = p.appendTags(b, x)
		b = append(b, `}},"metric":"`...)
		b = append(b, m.name...)
		b = append(b, "\"}\n"...)
	}
	p.buf = b
	if _, err := p.w.Write(b); err != nil {
		p.err = err
	}
}

// appendTags appends x's tags, in the order of their names. Only the
// scenario's name can need escaping.
func (p *PointStream) appendTags(b []byte, x *sample) []byte {
	if x.typ == ReqGet || x.typ == ReqBatch {
		b = append(append(append(b, `"cache":"`...), x.cache.Tier.String()...), `",`...)
	}
	b = append(b, `"expected_response":"`...)
	b = strconv.AppendBool(b, !x.failed)
	b = append(append(append(b, `","method":"`...), reqMethod[x.typ]...), `","name":"`...)
	b = append(append(append(b, x.typ.String()...), `","scenario":`...), p.scenario...)
	b = strconv.AppendInt(append(b, `,"status":"`...), int64(x.code), 10)
	return append(append(append(b, `","type":"`...), x.typ.String()...), '"')
}

// appendJSONFloat appends f as encoding/json writes a float64: the
// shortest form, in exponent notation (e-7, not e-07) below 1e-6 and from
// 1e21 on. f is finite: a latency in milliseconds, 0 or 1.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
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
