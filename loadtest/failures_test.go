package loadtest

import (
	"strings"
	"testing"
	"time"
)

// TestFailureExamples: the first failures are kept with the problem's
// detail (or the start of another body, or the transport error), and no
// more than maxFailureExamples.
func TestFailureExamples(t *testing.T) {
	var f failureExamples
	x := &sample{target: "http://r1", path: "/products/7", code: 503, latency: 1500 * time.Millisecond}
	f.note(2*time.Second, "GET", x, []byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the database is unavailable, try again shortly"}`), nil)
	f.note(3*time.Second, "PUT", &sample{target: "http://r2", path: "/products/8", code: 502}, []byte(strings.Repeat("x", 300)), nil)
	f.note(4*time.Second, "GET", &sample{target: "http://r3", path: "/products?ids=1,2"}, nil, errString("dial tcp: connection refused"))
	for range 2 * maxFailureExamples {
		f.note(5*time.Second, "GET", x, nil, errString("timeout"))
	}
	got := f.all()
	if len(got) != maxFailureExamples {
		t.Fatalf("%d examples, want %d", len(got), maxFailureExamples)
	}
	if s := got[0].String(); s != "2.0s GET http://r1/products/7: 503 after 1500 ms: the database is unavailable, try again shortly" {
		t.Errorf("first example %q", s)
	}
	if got[1].Detail != strings.Repeat("x", 200) || got[1].Status != 502 {
		t.Errorf("second example %+v: want the body's first 200 bytes", got[1])
	}
	if s := got[2].String(); !strings.Contains(s, "no response") || !strings.HasSuffix(s, "connection refused") {
		t.Errorf("third example %q", s)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
