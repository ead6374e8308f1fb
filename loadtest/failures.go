package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
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
