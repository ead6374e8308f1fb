package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestPointStream: -out json= is k6's --out json stream: every line one
// JSON object, each metric declared once before its first point, and one
// http_reqs, http_req_duration and http_req_failed point per measured
// request (warmup left out), tagged as k6 tags them.
func TestPointStream(t *testing.T) {
	_, urls := newFakeAPI(t, 2, 30, true)
	sc := &Scenario{
		Name: "points", Targets: urls, VUs: 3,
		Duration: Duration(20 * time.Second), Warmup: Duration(50 * time.Millisecond),
		Mix:   Mix{Get: 80, Update: 10, Batch: 10},
		Setup: Setup{Products: 30}, MaxRequests: 300,
	}
	var out bytes.Buffer
	ps := NewPointStream(&out, sc.Name)
	sum, err := Run(t.Context(), sc, RunOptions{Points: ps})
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests, %d bytes of points (%.0f per request)", sum.Requests, out.Len(), float64(out.Len())/float64(sum.Requests))
	type line struct {
		Type   string `json:"type"`
		Metric string `json:"metric"`
		Data   struct {
			Name  string            `json:"name"`
			Type  string            `json:"type"`
			Time  time.Time         `json:"time"`
			Value float64           `json:"value"`
			Tags  map[string]string `json:"tags"`
		} `json:"data"`
	}
	declared := map[string]string{}
	points := map[string]int64{}
	var durations, failed float64
	sc2 := bufio.NewScanner(&out)
	for sc2.Scan() {
		var l line
		if err := json.Unmarshal(sc2.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc2.Text(), err)
		}
		switch l.Type {
		case "Metric":
			if _, dup := declared[l.Metric]; dup || l.Data.Name != l.Metric {
				t.Fatalf("metric line %q: declared twice or misnamed", sc2.Text())
			}
			declared[l.Metric] = l.Data.Type
		case "Point":
			if _, ok := declared[l.Metric]; !ok {
				t.Fatalf("point before its metric: %q", sc2.Text())
			}
			tg := l.Data.Tags
			if l.Data.Time.IsZero() || tg["scenario"] != "points" || tg["method"] == "" || tg["status"] == "" ||
				tg["expected_response"] == "" || tg["name"] != tg["type"] || (tg["type"] == "get" && tg["cache"] == "") {
				t.Fatalf("point %q lacks k6's fields or tags", sc2.Text())
			}
			points[l.Metric]++
			switch l.Metric {
			case "http_req_duration":
				durations += l.Data.Value
			case "http_req_failed":
				failed += l.Data.Value
			}
		default:
			t.Fatalf("line type %q", l.Type)
		}
	}
	want := map[string]string{"http_reqs": "counter", "http_req_duration": "trend", "http_req_failed": "rate"}
	for m, typ := range want {
		if declared[m] != typ || points[m] != sum.Requests {
			t.Errorf("%s: type %q, %d points; want %s, %d (the measured requests)", m, declared[m], points[m], typ, sum.Requests)
		}
	}
	if durations <= 0 || failed != float64(sum.Failed) {
		t.Errorf("durations sum %.3f ms, failed %v; want > 0 and %d", durations, failed, sum.Failed)
	}
}
