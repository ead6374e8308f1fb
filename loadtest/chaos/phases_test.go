package chaos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest"
)

// TestJudgeFailSafe: in a phase whose reads opt in to stale-if-error,
// labelled stale answers (even of a superseded version) and failed reads
// that did not opt in are figures, not breaches; an unlabelled stale read,
// a labelled answer to a read that did not opt in, and one older than the
// allowance are breaches.
func TestJudgeFailSafe(t *testing.T) {
	var ph Phase
	for _, p := range Phases {
		if p.Name == "db-outage" {
			ph = p
		}
	}
	if ph.StaleIfError != dbOutageAllowance || ph.StaleIfErrorShare != 0.5 || ph.NoFailedReads {
		t.Fatalf("db-outage phase %+v", ph)
	}
	summary := func(f loadtest.FailSafe, c loadtest.ProbeResult) *loadtest.Summary {
		return &loadtest.Summary{
			Requests: 1000, Failed: 40,
			Types:       map[string]loadtest.TypeSummary{"get": {Requests: 900, Failed: 40}},
			FailSafe:    f,
			Consistency: c,
		}
	}
	ok := loadtest.FailSafe{AllowanceS: 60, OptIn: 450, OptInFailed: 2, OtherReads: 450, OtherFailed: 38, Served: 30, MaxAgeS: 7}
	probe := loadtest.NewProbe(loadtest.DefaultGrace)
	r := ph.judge(measurement{sum: summary(ok, loadtest.ProbeResult{LabelledReads: 30, LabelledStale: 12}), probe: probe})
	if !r.OK || r.FailedReads != 40 || r.OptInReads != 450 || r.OptInFailed != 2 || r.OtherFailed != 38 ||
		r.LabelledStale != 30 || r.LabelledOld != 12 || r.MaxStaleAgeS != 7 {
		t.Fatalf("labelled stale answers and failed reads without opt-in: %+v", r)
	}
	for _, tt := range []struct {
		name   string
		f      loadtest.FailSafe
		stale  int64
		breach string
	}{
		{"unlabelled stale read", ok, 1, "1 stale reads"},
		{"stale answer not asked for", loadtest.FailSafe{OtherReads: 10, Served: 1, Unrequested: 1}, 0, "1 answers labelled stale to reads that did not send stale-if-error"},
		{"older than allowed", loadtest.FailSafe{OptIn: 10, Served: 2, OverAllowance: 2}, 0, "2 labelled stale answers older than"},
	} {
		r := ph.judge(measurement{sum: summary(tt.f, loadtest.ProbeResult{StaleReads: tt.stale}), probe: probe})
		if r.OK || len(r.Breaches) != 1 || !strings.HasPrefix(r.Breaches[0], tt.breach) {
			t.Errorf("%s: OK %v, breaches %q; want one starting %q", tt.name, r.OK, r.Breaches, tt.breach)
		}
	}
	var b bytes.Buffer
	(&Result{Phases: []PhaseResult{r}}).WriteTable(&b)
	if !strings.Contains(b.String(), "stale-if-error") || !strings.Contains(b.String(), "db-outage") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestJudgeFailedOptInByKeysReadBefore: on fake replicas, one answers 503
// from a quarter into the phase until it has given a few. Every read
// opts in to stale-if-error, so each of its failures is an opted-in read
// of keys answered before the fault (four keys, read hundreds of times
// before it): a breach. Judged against a fault taken to have begun before
// the run, no key had been answered before it: the same failures are
// counted as unread, and the phase holds.
func TestJudgeFailedOptInByKeysReadBefore(t *testing.T) {
	t.Parallel()
	e, replicas := fakeEnv(t, 2)
	e.mix = &loadtest.Mix{Get: 1}
	victim := replicas[1]
	ph := Phase{Name: "failsafe", StaleIfError: time.Minute, StaleIfErrorShare: 1,
		inject: func(_ context.Context, _ *env, c clock) outcome {
			if !c.at(c.d() / 4) {
				return outcome{}
			}
			began := time.Now()
			victim.setFailing(true)
			untilEnough(victim, c)
			victim.setFailing(false)
			return outcome{end: c.since(), began: began}
		}}
	beforeRun := time.Now()
	m, err := e.measure(t.Context(), ph)
	if err != nil {
		t.Fatal(err)
	}
	r := ph.judge(m)
	if r.OptInFailed == 0 || r.OtherReads != 0 {
		t.Fatalf("opted-in %d, failed %d, others %d: want failed opted-in reads only", r.OptInReads, r.OptInFailed, r.OtherReads)
	}
	if r.OptInFailedReadBefore != r.OptInFailed || r.OptInFailedUnread != 0 || r.OK ||
		!hasBreach(r, fmt.Sprintf("%d reads that sent stale-if-error failed though", r.OptInFailed)) {
		t.Errorf("fault after the keys were read: %d read before, %d unread of %d failed, ok=%v, breaches %q; want all read before, broken",
			r.OptInFailedReadBefore, r.OptInFailedUnread, r.OptInFailed, r.OK, r.Breaches)
	}
	m.fault.began = beforeRun
	if r := ph.judge(m); r.OptInFailedReadBefore != 0 || r.OptInFailedUnread != r.OptInFailed || !r.OK {
		t.Errorf("fault before any read: %d read before, %d unread of %d failed, ok=%v, breaches %q; want all unread, ok",
			r.OptInFailedReadBefore, r.OptInFailedUnread, r.OptInFailed, r.OK, r.Breaches)
	}
	var b bytes.Buffer
	(&Result{Phases: []PhaseResult{r}}).WriteTable(&b)
	if want := fmt.Sprintf("%d/0", r.OptInFailed); !strings.Contains(b.String(), want) {
		t.Errorf("table lacks read/unread %q:\n%s", want, b.String())
	}
}
