package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cause is why a request got no HTTP answer: the class of its transport
// error.
type Cause uint8

// Transport error classes. CauseNone means the request got a response.
const (
	CauseNone    Cause = iota
	CauseRefused       // connection refused: nothing listens (a replica is down)
	CauseReset         // connection reset by the peer, or a broken pipe
	CauseClosed        // the peer closed the connection mid-exchange (EOF)
	CauseTimeout       // the request or the dial timed out
	CauseOther
	numCauses
)

var causeNames = [numCauses]string{"", "refused", "reset", "closed", "timeout", "other"}

// String is the cause's name in the summary.
func (c Cause) String() string { return causeNames[c] }

// ClassifyError names the transport error of a failed request.
func ClassifyError(err error) Cause {
	var ne net.Error
	switch {
	case err == nil:
		return CauseNone
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return CauseReset
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CauseClosed
	}
	return CauseOther
}

// Failures explains the failed requests of a run: unexpected status codes,
// transport errors by cause, and failures per target.
type Failures struct {
	// ByStatus counts responses whose status was not the expected one.
	ByStatus map[string]int64 `json:"by_status"`
	// ByCause counts requests that got no response, by [Cause].
	ByCause map[string]int64 `json:"by_cause"`
	// ByTarget counts failed requests (both kinds) per base URL.
	ByTarget map[string]int64 `json:"by_target"`
	// Examples are the first failed requests of the run (at most
	// maxFailureExamples), so a failure that breaks a bound can be told
	// from another: a server's answer or a transport error, and where.
	Examples []FailureExample `json:"examples,omitempty"`
}

// FailureExample is one failed request.
type FailureExample struct {
	AtS    float64 `json:"at_s"` // seconds from the start of the run
	Method string  `json:"method"`
	Target string  `json:"target"`
	Path   string  `json:"path"`
	Status int     `json:"status,omitempty"` // 0: no response
	// Detail is the problem's detail (application/problem+json), the
	// start of another body, or the transport error.
	Detail    string  `json:"detail"`
	LatencyMs float64 `json:"latency_ms"`
}

// String is the example on one line: when, what, where, and why.
func (e FailureExample) String() string {
	what := "no response"
	if e.Status != 0 {
		what = strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("%.1fs %s %s%s: %s after %.0f ms: %s", e.AtS, e.Method, e.Target, e.Path, what, e.LatencyMs, e.Detail)
}

// maxFailureExamples bounds Failures.Examples.
const maxFailureExamples = 10

// failureExamples keeps the first failed requests; failures are rare, so
// a mutex is cheap here.
type failureExamples struct {
	mu   sync.Mutex
	list []FailureExample
}

// note keeps x's failure if fewer than maxFailureExamples are kept. body
// is the response body read (nil without a response), err the transport
// error.
func (f *failureExamples) note(at time.Duration, method string, x *sample, body []byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) >= maxFailureExamples {
		return
	}
	e := FailureExample{AtS: at.Seconds(), Method: method, Target: x.target, Path: x.path,
		Status: x.code, LatencyMs: float64(x.latency) / float64(time.Millisecond)}
	switch {
	case err != nil:
		e.Detail = err.Error()
	default:
		e.Detail = problemDetail(body)
	}
	f.list = append(f.list, e)
}

func (f *failureExamples) all() []FailureExample {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

// problemDetail is an RFC 9457 problem's detail, or the start of a body
// that is not one.
func problemDetail(body []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	const max = 200
	if len(body) > max {
		body = body[:max]
	}
	return strings.TrimSpace(string(body))
}

// failureCounts is the part of a window that counts failures and status
// codes; maps, because the set of codes and targets is small and open.
type failureCounts struct {
	status   map[int]int64 // every response, by status code
	badCode  map[int]int64 // unexpected statuses only
	causes   [numCauses]int64
	byTarget map[string]int64
}

func (f *failureCounts) add(x *sample) {
	if f.status == nil {
		f.status, f.badCode, f.byTarget = map[int]int64{}, map[int]int64{}, map[string]int64{}
	}
	if x.code != 0 {
		f.status[x.code]++
	}
	if !x.failed {
		return
	}
	if x.cause != CauseNone {
		f.causes[x.cause]++
	} else if x.failCode != 0 {
		f.badCode[x.failCode]++
	} else if x.code != 0 {
		f.badCode[x.code]++
	}
	f.byTarget[x.target]++
}

func (f *failureCounts) merge(o *failureCounts) {
	if o.status == nil {
		return
	}
	if f.status == nil {
		f.status, f.badCode, f.byTarget = map[int]int64{}, map[int]int64{}, map[string]int64{}
	}
	for k, v := range o.status {
		f.status[k] += v
	}
	for k, v := range o.badCode {
		f.badCode[k] += v
	}
	for i, v := range o.causes {
		f.causes[i] += v
	}
	for k, v := range o.byTarget {
		f.byTarget[k] += v
	}
}

func (f *failureCounts) reset() {
	clear(f.status)
	clear(f.badCode)
	clear(f.byTarget)
	f.causes = [numCauses]int64{}
}

// summary returns the status codes of every response and the failures.
func (f *failureCounts) summary() (map[string]int64, Failures) {
	codes := map[string]int64{}
	out := Failures{ByStatus: map[string]int64{}, ByCause: map[string]int64{}, ByTarget: map[string]int64{}}
	for k, v := range f.status {
		codes[strconv.Itoa(k)] = v
	}
	for k, v := range f.badCode {
		out.ByStatus[strconv.Itoa(k)] = v
	}
	for c := CauseRefused; c < numCauses; c++ {
		if n := f.causes[c]; n > 0 {
			out.ByCause[c.String()] = n
		}
	}
	for k, v := range f.byTarget {
		out.ByTarget[k] = v
	}
	return codes, out
}
