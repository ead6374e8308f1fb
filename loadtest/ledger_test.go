package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeHeavy is a short scenario against the fake replicas with many
// writes of every kind.
func writeHeavy(urls []string) *Scenario {
	return &Scenario{
		Name: "writes", Targets: urls, VUs: 4, Duration: Duration(20 * time.Second),
		Keys:  KeySpec{Distribution: "uniform"},
		Mix:   Mix{Get: 50, Update: 30, Create: 10, Delete: 10},
		Setup: Setup{Products: 40}, MaxRequests: 300,
	}
}

func lostThreshold(t *testing.T, s *Summary) ThresholdResult {
	t.Helper()
	for _, r := range s.Thresholds {
		if strings.HasPrefix(r.Threshold, "lost_writes==0") {
			return r
		}
	}
	t.Fatalf("no built-in lost_writes threshold in %+v", s.Thresholds)
	return ThresholdResult{}
}

// TestLostWritesNone: on a correct API every acknowledged write is read
// back on every replica and the built-in threshold passes.
func TestLostWritesNone(t *testing.T) {
	_, urls := newFakeAPI(t, 3, 40, true)
	sum, err := Run(t.Context(), writeHeavy(urls), RunOptions{Settle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l := sum.LostWrites
	if !l.Enabled || l.IDs == 0 || l.Writes < int64(l.IDs) || l.Reads < int64(3*l.IDs) || l.Lost != 0 || l.Unverified != 0 {
		t.Fatalf("lost writes %+v, want every id read on 3 replicas and none lost", l)
	}
	if r := lostThreshold(t, sum); !r.OK || !sum.ThresholdsOK {
		t.Fatalf("threshold %+v", r)
	}
}

// TestLostWritesFound: each kind of loss is found and fails the run.
func TestLostWritesFound(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fault    func(*fakeAPI)
		coherent bool
		check    func(f *fakeAPI, l LostWrites) error
	}{
		{"updates not stored", func(f *fakeAPI) { f.loseUpdates = true }, true, func(f *fakeAPI, l LostWrites) error {
			if l.Lost != len(f.updated) || l.Backwards != 3*len(f.updated) || l.Missing+l.Reappeared != 0 {
				return fmt.Errorf("want %d ids lost, each older on 3 replicas", len(f.updated))
			}
			return nil
		}},
		{"deletes undone", func(f *fakeAPI) { f.undoDeletes = true }, true, func(f *fakeAPI, l LostWrites) error {
			if l.Lost == 0 || l.Reappeared != 3*l.Lost || l.Backwards+l.Missing != 0 {
				return fmt.Errorf("want deleted ids answering on all 3 replicas")
			}
			return nil
		}},
		{"replicas never invalidated", func(*fakeAPI) {}, false, func(f *fakeAPI, l LostWrites) error {
			if l.Lost == 0 || l.Backwards == 0 || l.Backwards >= 3*len(f.updated) {
				return fmt.Errorf("want older versions on some replicas, not all")
			}
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, urls := newFakeAPI(t, 3, 40, tt.coherent)
			tt.fault(f)
			sc := writeHeavy(urls)
			sc.Mix.Get = 80 // reads fill the incoherent replicas' L1s
			sum, err := Run(t.Context(), sc, RunOptions{Settle: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			l := sum.LostWrites
			f.mu.Lock()
			err = tt.check(f, l)
			f.mu.Unlock()
			if err != nil {
				t.Fatalf("%v; got %+v", err, l)
			}
			if len(l.Examples) == 0 || l.Examples[0].Seen == "" {
				t.Fatalf("no examples: %+v", l)
			}
			if r := lostThreshold(t, sum); r.OK || r.Actual != float64(l.Lost) || sum.ThresholdsOK {
				t.Fatalf("threshold %+v passed with %d lost", r, l.Lost)
			}
		})
	}
}

// A delete whose answer never came (the replica died after its commit)
// may have happened: the product's 404 is then no lost write.
func TestLostWritesUnansweredDeletes(t *testing.T) {
	f, urls := newFakeAPI(t, 3, 40, true)
	f.dropDeleteAnswers = true
	sum, err := Run(t.Context(), writeHeavy(urls), RunOptions{Settle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l := sum.LostWrites
	if l.Lost != 0 || l.UnansweredDeletes == 0 {
		t.Fatalf("got %d lost and %d unanswered deletes, want 0 and some: %+v", l.Lost, l.UnansweredDeletes, l)
	}
}

// TestFailureCauses: refused connections, closed connections and 503s are
// counted by cause, status and target.
func TestFailureCauses(t *testing.T) {
	f, urls := newFakeAPI(t, 1, 20, true)
	f.fail503Every = 7
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: refused
	closer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	go func() { // reads the request, then hangs up without an answer
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	hangup := "http://" + closer.Addr().String()
	sc := &Scenario{
		Name: "faults", Targets: []string{urls[0], dead, hangup}, Balance: "round-robin", VUs: 2,
		Duration: Duration(20 * time.Second), Mix: Mix{Get: 1}, Setup: Setup{Products: 20}, MaxRequests: 90,
	}
	sum, err := Run(t.Context(), sc, RunOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fl := sum.Failures
	if fl.ByCause["refused"] != 30 || fl.ByTarget[dead] != 30 {
		t.Errorf("refused %d (target %d), want 30: %+v", fl.ByCause["refused"], fl.ByTarget[dead], fl)
	}
	if fl.ByCause["closed"]+fl.ByCause["reset"] != 30 || fl.ByTarget[hangup] != 30 {
		t.Errorf("closed+reset %d, want 30: %+v", fl.ByCause["closed"]+fl.ByCause["reset"], fl)
	}
	if n := fl.ByStatus["503"]; n == 0 || n != fl.ByTarget[urls[0]] || sum.StatusCodes["503"] != n || sum.StatusCodes["200"] != 30-n {
		t.Errorf("503s %d, status codes %v, want every failure of the live target a 503", n, sum.StatusCodes)
	}
	if sum.Failed != 60+fl.ByStatus["503"] {
		t.Errorf("failed %d, want the sum of the causes: %+v", sum.Failed, fl)
	}
	var text strings.Builder
	sum.WriteText(&text)
	for _, want := range []string{"by transport error", "refused:30", "503:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	var html strings.Builder
	if err := WriteHTML(&html, sum); err != nil || !strings.Contains(html.String(), "refused:30") {
		t.Errorf("HTML report lacks the causes (%v)", err)
	}
}

func TestClassifyError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Cause
	}{
		{nil, CauseNone},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, CauseRefused},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), CauseReset},
		{io.ErrUnexpectedEOF, CauseClosed},
		{fmt.Errorf("Get: %w", io.EOF), CauseClosed},
		{context.DeadlineExceeded, CauseTimeout},
		{os.ErrDeadlineExceeded, CauseTimeout},
		{errors.New("tls: bad certificate"), CauseOther},
	} {
		if got := ClassifyError(tt.err); got != tt.want {
			t.Errorf("ClassifyError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
