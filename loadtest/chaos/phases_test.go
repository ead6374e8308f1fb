package chaos

import (
	"bytes"
	"strings"
	"testing"

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
