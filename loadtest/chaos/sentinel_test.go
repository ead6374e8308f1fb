package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPhaseOnItsOwnTopology: a phase with a topology of its own runs its
// load on the topology's targets only, for at least its MinLength, and
// the run's targets are back afterwards; the promotion its fault reports
// and the replicas' failover counters are in its figures and the table.
// A topology that cannot run here skips the phase, saying why.
func TestPhaseOnItsOwnTopology(t *testing.T) {
	t.Parallel()
	e, _ := fakeEnv(t, 2)
	e.cfg.Phase, e.cfg.Logf = time.Second, t.Logf
	before := append([]string(nil), e.urls...)
	_, phaseReplicas := fakeEnv(t, 2)
	var served atomic.Int64
	var phaseURLs []string
	for _, r := range phaseReplicas {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/metrics" {
				fmt.Fprint(w, "# TYPE tiercache_not_replicated_total counter\ntiercache_not_replicated_total{namespace=\"x\"} 7\n"+
					"productsd_outbox_replays_total 2\nproductsd_outbox_replays_total_other 100\n")
				return
			}
			served.Add(1)
			r.ServeHTTP(w, req)
		}))
		t.Cleanup(srv.Close)
		phaseURLs = append(phaseURLs, srv.URL)
	}
	undone := false
	var length time.Duration
	ph := Phase{
		Name: "own", MinLength: 2 * time.Second, Allowance: time.Second,
		topology: func(context.Context, *env) (func(), error) {
			e.urls = phaseURLs
			return func() { e.urls, undone = before, true }, nil
		},
		inject: func(_ context.Context, _ *env, c clock) outcome {
			length = c.d()
			return outcome{end: c.since(), promotion: 1500 * time.Millisecond}
		},
	}
	r, err := e.runPhase(t.Context(), ph)
	if err != nil {
		t.Fatal(err)
	}
	if !undone || strings.Join(e.urls, ",") != strings.Join(before, ",") {
		t.Errorf("targets after the phase %v, undone %v; want %v back", e.urls, undone, before)
	}
	if length != 2*time.Second || r.Requests == 0 || served.Load() < r.Requests {
		t.Errorf("phase of %v, %d requests, %d served by the topology's targets; want 2s and all of them", length, r.Requests, served.Load())
	}
	if !r.OK || r.PromotionMs != 1500 || r.NotReplicated != 14 || r.Replays != 4 || r.AllowanceMs != 1000 {
		t.Errorf("figures %+v", r)
	}

	ph.topology = func(context.Context, *env) (func(), error) {
		return nil, fmt.Errorf("%w: no sentinel here", errSkip)
	}
	skipped, err := e.runPhase(t.Context(), ph)
	if err != nil || !skipped.OK || skipped.Requests != 0 || skipped.Skipped != "no sentinel here" {
		t.Fatalf("skipped phase: %+v, %v", skipped, err)
	}
	var b bytes.Buffer
	(&Result{Phases: []PhaseResult{r, skipped}}).WriteTable(&b)
	for _, want := range []string{"promotion seen 1.50s after the master's kill", "(WAIT): 14; outbox replays after the\nmaster change: 4", "skipped: no sentinel here"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestSentinelFailoverPhase: the phase is selectable, in the default list,
// and bounded by the failover allowance from the promotion.
func TestSentinelFailoverPhase(t *testing.T) {
	t.Parallel()
	got, err := selectPhases([]string{"sentinel-failover"})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v, %v", got, err)
	}
	ph := got[0]
	if ph.Allowance != 3*time.Second || ph.MinLength != sentinelMinLength || ph.topology == nil || ph.inject == nil {
		t.Errorf("sentinel-failover %+v", ph)
	}
	all, _ := selectPhases(nil)
	if all[len(all)-1].Name != "sentinel-failover" {
		t.Errorf("default phases end with %s, want sentinel-failover", all[len(all)-1].Name)
	}
}
