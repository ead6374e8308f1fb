package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"testing"
	"time"
)

// marshalPoints is PointStream as it was first written, with a map of tags
// and json.Marshal per line: the reference its output must equal byte for
// byte, and the baseline of BenchmarkPointStream.
type marshalPoints struct {
	w        *bufio.Writer
	scenario string
	declared map[string]bool
}

type refPoint struct {
	Type   string       `json:"type"`
	Data   refPointData `json:"data"`
	Metric string       `json:"metric"`
}

type refPointData struct {
	Time  time.Time         `json:"time"`
	Value float64           `json:"value"`
	Tags  map[string]string `json:"tags"`
}

func (p *marshalPoints) add(end time.Time, x *sample) {
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
	for i, m := range pointMetrics {
		if !p.declared[m.name] {
			p.declared[m.name] = true
			p.line(k6Metric{Type: "Metric", Metric: m.name, Data: k6MetricData{
				Name: m.name, Type: m.typ, Contains: m.contains, Thresholds: []string{},
			}})
		}
		p.line(refPoint{Type: "Point", Metric: m.name, Data: refPointData{Time: end, Value: values[i], Tags: tags}})
	}
}

func (p *marshalPoints) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	_, _ = p.w.Write(append(b, '\n'))
}

// pointSamples are requests of every type, status and outcome, with
// latencies whose milliseconds encoding/json writes in either notation.
func pointSamples() []sample {
	var out []sample
	latencies := []time.Duration{0, time.Nanosecond, 999 * time.Nanosecond, 1234567, 20 * time.Millisecond, time.Hour, 1<<63 - 1}
	for typ := range numReqTypes {
		for i, lat := range latencies {
			out = append(out, sample{
				typ: typ, latency: lat, failed: i%3 == 0, code: []int{0, 200, 404, 503}[i%4],
				cache: CacheStatus{Tier: Tier(i % int(numTiers))},
			})
		}
	}
	return out
}

// TestPointStreamBytes: PointStream writes what the map of tags and
// json.Marshal per line wrote, byte for byte, for scenario names that
// need escaping (quotes, HTML characters, U+2028, invalid UTF-8) and
// times in any zone and with or without a fraction of a second.
func TestPointStreamBytes(t *testing.T) {
	t.Parallel()
	east := time.FixedZone("east", 5*3600+30*60)
	times := []time.Time{
		time.Date(2026, 12, 5, 21, 40, 39, 123456789, time.UTC),
		time.Date(2026, 12, 5, 21, 40, 39, 0, east),
		time.Date(2026, 12, 5, 21, 40, 39, 120000000, time.Local),
		time.Now(), // with a monotonic reading
	}
	for _, scenario := range []string{"points", `a "b" \c`, "<x>&y", "line\u2028sep\ttab", "bad\xffutf8", ""} {
		var want, got bytes.Buffer
		ref := &marshalPoints{w: bufio.NewWriter(&want), scenario: scenario, declared: map[string]bool{}}
		ps := NewPointStream(&got, scenario)
		for i, x := range pointSamples() {
			end := times[i%len(times)]
			ref.add(end, &x)
			ps.add(end, &x)
		}
		if err := ref.w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := ps.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			g, w := bytes.Split(got.Bytes(), []byte("\n")), bytes.Split(want.Bytes(), []byte("\n"))
			for i := range min(len(g), len(w)) {
				if !bytes.Equal(g[i], w[i]) {
					t.Fatalf("scenario %q, line %d:\ngot  %s\nwant %s", scenario, i, g[i], w[i])
				}
			}
			t.Fatalf("scenario %q: %d lines, want %d", scenario, len(g), len(w))
		}
	}
}

// BenchmarkPointStream is the cost of one request's three points,
// side by side with json.Marshal of a map of tags per line.
func BenchmarkPointStream(b *testing.B) {
	samples := pointSamples()
	end := time.Now()
	b.Run("json.Marshal", func(b *testing.B) {
		p := &marshalPoints{w: bufio.NewWriter(io.Discard), scenario: "default", declared: map[string]bool{}}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.add(end, &samples[i%len(samples)])
		}
	})
	b.Run("PointStream", func(b *testing.B) {
		p := NewPointStream(io.Discard, "default")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.add(end, &samples[i%len(samples)])
		}
	})
}

// TestAppendJSONFloat: floats as json.Marshal writes them, on both sides
// of where it turns to exponent notation.
func TestAppendJSONFloat(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, math.Copysign(0, -1), 1, 0.5, 1e-6, 9.99e-7, 1.5e-9, 5e-324, 1e20, 1e21, 1.5e300, -2.5e-8, 9223372036854.775807, 123.456} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONFloat(nil, f); !bytes.Equal(got, want) {
			t.Errorf("appendJSONFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
