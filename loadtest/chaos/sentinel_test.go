package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPhaseOnItsOwnTopology: a phase with a topology of its own runs its
// load on the topology's targets only, for at least its MinLength, and
// the run's targets are back afterwards; the promotion its fault reports,
// the replicas' failover counters and the growth of their unknown write
// outcomes over the phase are in its figures and the table.
// A topology that cannot run here skips the phase, saying why.
func TestPhaseOnItsOwnTopology(t *testing.T) {
	t.Parallel()
	e, _ := fakeEnv(t, 2)
	e.cfg.Phase, e.cfg.Logf = time.Second, t.Logf
	before := append([]string(nil), e.urls...)
	_, phaseReplicas := fakeEnv(t, 2)
	var served atomic.Int64
	var unknown [2]atomic.Int64 // the replicas' unknown write outcomes, which the fault raises
	var phaseURLs []string
	for i, r := range phaseReplicas {
		unknown[i].Store(10)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/metrics" {
				fmt.Fprintf(w, "# TYPE tiercache_not_replicated_total counter\ntiercache_not_replicated_total{namespace=\"x\"} 7\n"+
					"productsd_outbox_replays_total 2\nproductsd_outbox_replays_total_other 100\n"+
					"productsd_db_write_outcome_unknown_total %d\n", unknown[i].Load())
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
			unknown[0].Add(3)
			unknown[1].Add(3)
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
	if !r.OK || r.PromotionMs != 1500 || r.NotReplicated != 14 || r.Replays != 4 || r.UnknownOutcomes != 6 || r.AllowanceMs != 1000 {
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

// TestSentinelPhaseThatDoesNotStart: without redis-server on the PATH the
// sentinel-failover phase is skipped, saying why; with a redis-server
// that runs but not as a sentinel, the phase is broken, saying why, the
// master and replica it started are stopped, and its targets are the
// run's still. (Not parallel: it sets PATH.)
func TestSentinelPhaseThatDoesNotStart(t *testing.T) {
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("the test needs redis-server: %v", err)
	}
	phases, err := selectPhases([]string{"sentinel-failover"})
	if err != nil {
		t.Fatal(err)
	}
	ph := phases[0]
	e, _ := fakeEnv(t, 2)
	before := strings.Join(e.urls, ",")

	t.Setenv("PATH", t.TempDir())
	r, err := e.runPhase(t.Context(), ph)
	if err != nil || !r.OK || !strings.Contains(r.Skipped, "redis-server is not installed") || r.NotStarted != "" {
		t.Errorf("without redis-server: %+v, %v; want skipped, saying redis-server is not installed", r, err)
	}

	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\nfor a in \"$@\"; do\n"+
		"  [ \"$a\" = --sentinel ] && { echo 'fake: no sentinel mode' >&2; exit 1; }\ndone\nexec %s \"$@\"\n", calls, redisServer)
	if err := os.WriteFile(filepath.Join(bin, "redis-server"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	r, err = e.runPhase(t.Context(), ph)
	if err != nil || r.OK || r.Skipped != "" || !strings.Contains(r.NotStarted, "fake: no sentinel mode") ||
		!hasBreach(r, "did not start: ") || r.Requests != 0 {
		t.Errorf("with a sentinel that exits: %+v, %v; want broken, saying why", r, err)
	}
	if got := strings.Join(e.urls, ","); got != before {
		t.Errorf("targets %s after the phase, want %s", got, before)
	}
	started, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	ports := regexp.MustCompile(`--port (\d+)`).FindAllStringSubmatch(string(started), -1)
	if len(ports) != 3 {
		t.Fatalf("redis-server started %d times, want 3 (master, replica, sentinel):\n%s", len(ports), started)
	}
	for _, p := range ports[:2] {
		if c, err := net.Dial("tcp", "127.0.0.1:"+p[1]); err == nil {
			c.Close()
			t.Errorf("the redis-server on port %s still runs after the phase", p[1])
		}
	}

	var b bytes.Buffer
	(&Result{Phases: []PhaseResult{r}}).WriteTable(&b)
	for _, want := range []string{"sentinel-failover did not start  BROKEN", "fake: no sentinel mode"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
