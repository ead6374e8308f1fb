package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest"
)

// fakeProducts is the database behind the fake replicas.
type fakeProducts struct {
	mu       sync.Mutex
	versions map[string]int64
	written  map[string]time.Time // when each version was written
	next     int
}

func (p *fakeProducts) create() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := fmt.Sprintf("p%04d", p.next)
	p.versions[id] = 1
	return id
}

// fakeReplica stands in for a productsd replica: it reads and writes the
// shared products, and a test makes it stale (it keeps the copies it read,
// which writes do not evict) or failing (503 to every request).
type fakeReplica struct {
	db  *fakeProducts
	url string

	mu      sync.Mutex
	copies  map[string]int64 // non-nil while stale
	failing bool
	// faulty counts 503s and answers older than a version written at
	// least staleAge before; enough is closed when it reaches
	// faultyWanted.
	faulty int
	enough chan struct{}
}

const (
	staleAge     = 300 * time.Millisecond // well past the probe's 50 ms grace
	faultyWanted = 5
)

// noteFaulty counts a faulty answer; r.mu is held.
func (r *fakeReplica) noteFaulty() {
	if r.faulty++; r.faulty == faultyWanted {
		close(r.enough)
	}
}

func (r *fakeReplica) setStale(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.copies = nil
	if on {
		r.copies = map[string]int64{}
	}
}

func (r *fakeReplica) setFailing(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = on
}

// read returns id's version as this replica answers it.
func (r *fakeReplica) read(id string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.db.mu.Lock()
	v, ok := r.db.versions[id]
	written := r.db.written[id]
	r.db.mu.Unlock()
	copied, stale := r.copies[id]
	switch {
	case stale:
		if copied < v && time.Since(written) >= staleAge {
			r.noteFaulty()
		}
		return copied, true
	case ok && r.copies != nil:
		r.copies[id] = v
	}
	return v, ok
}

func (r *fakeReplica) write(id string, del bool) (int64, bool) {
	r.db.mu.Lock()
	defer r.db.mu.Unlock()
	v, ok := r.db.versions[id]
	switch {
	case !ok:
	case del:
		delete(r.db.versions, id)
	default:
		v++
		r.db.versions[id] = v
		r.db.written[id] = time.Now()
	}
	return v, ok
}

func writeProduct(w http.ResponseWriter, id string, v int64, status int) {
	w.Header().Set("ETag", fmt.Sprintf(`"%d"`, v))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Status", "productsd-l1; hit")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"id":%q,"name":"x","description":"","price_cents":1,"version":%d}`, id, v)
}

func (r *fakeReplica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	failing := r.failing
	if failing {
		r.noteFaulty()
	}
	r.mu.Unlock()
	if failing {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	id := strings.TrimPrefix(req.URL.Path, "/products/")
	var v int64
	ok := true
	switch {
	case req.URL.Path == "/products" && req.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"items":[],"next_after":null}`)
		return
	case req.URL.Path == "/products" && req.Method == http.MethodPost:
		writeProduct(w, r.db.create(), 1, http.StatusCreated)
		return
	case req.Method == http.MethodGet:
		v, ok = r.read(id)
	case req.Method == http.MethodPut:
		v, ok = r.write(id, false)
	case req.Method == http.MethodDelete:
		if _, ok = r.write(id, true); ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if !ok {
		http.NotFound(w, req)
		return
	}
	writeProduct(w, id, v, http.StatusOK)
}

// fakeEnv is an env on n fake replicas over a few products: what measure
// and judge need, without productsd, Redis or PostgreSQL.
func fakeEnv(t *testing.T, n int) (*env, []*fakeReplica) {
	t.Helper()
	db := &fakeProducts{versions: map[string]int64{}, written: map[string]time.Time{}}
	e := &env{cfg: Config{Phase: 4 * time.Second, VUs: 8, Logf: t.Logf}}
	for range 4 {
		e.ids = append(e.ids, db.create())
	}
	var replicas []*fakeReplica
	for range n {
		r := &fakeReplica{db: db, enough: make(chan struct{})}
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		r.url = srv.URL
		e.urls = append(e.urls, srv.URL)
		replicas = append(replicas, r)
	}
	return e, replicas
}

// faultFor is a fault of replica r that begins with the phase (set(true))
// and ends (set(false)) once r has given faultyWanted faulty answers,
// however slowly a busy machine sends the requests, or three quarters
// into the phase; its outcome's end is when it was undone.
func faultFor(r *fakeReplica, set func(bool), victim string) func(context.Context, *env, clock) outcome {
	set(true)
	return func(_ context.Context, _ *env, c clock) outcome {
		untilEnough(r, c)
		set(false)
		return outcome{end: c.since(), victim: victim}
	}
}

// untilEnough waits until r has given faultyWanted faulty answers, three
// quarters of the phase have passed, or the phase is cancelled.
func untilEnough(r *fakeReplica, c clock) {
	late := time.NewTimer(time.Until(c.start.Add(c.d() * 3 / 4)))
	defer late.Stop()
	select {
	case <-r.enough:
	case <-late.C:
	case <-c.done:
	}
}

// TestStaleReadsAgainstTheAllowance: a replica that keeps serving what it
// read while the other takes writes (a third of the requests), until
// faultFor ends it. Its stale reads break a phase without an allowance;
// with an allowance they pass, since none began after the fault ended
// plus the allowance; and they break it again when the fault is taken to
// have ended at the phase's start (the replica stayed stale past the
// allowance).
func TestStaleReadsAgainstTheAllowance(t *testing.T) {
	t.Parallel()
	e, replicas := fakeEnv(t, 2)
	e.mix = &loadtest.Mix{Get: 2, Update: 1}
	ph := Phase{Name: "stale", inject: faultFor(replicas[1], replicas[1].setStale, "")}
	m, err := e.measure(t.Context(), ph)
	if err != nil {
		t.Fatal(err)
	}
	staleReads := m.sum.Consistency.StaleReads
	if staleReads == 0 || m.fault.end >= e.cfg.Phase {
		t.Fatalf("%d stale reads of %d requests, the fault ended at %v of %v: the fake replica was not stale long enough",
			staleReads, m.sum.Requests, m.fault.end, e.cfg.Phase)
	}

	if r := ph.judge(m); r.OK || r.StaleBound != staleReads || !hasBreach(r, fmt.Sprintf("%d stale reads", staleReads)) {
		t.Errorf("no allowance: ok=%v, %d of %d stale reads beyond, breaches %q; want broken by all of them", r.OK, r.StaleBound, staleReads, r.Breaches)
	}

	ph.Allowance = 100 * time.Millisecond
	if r := ph.judge(m); !r.OK || r.StaleBound != 0 || r.StaleReads != staleReads || r.AllowanceMs != 100 {
		t.Errorf("allowance 100ms: ok=%v, %d beyond, %d stale, allowance %vms, breaches %q; want ok with %d stale reads, none beyond",
			r.OK, r.StaleBound, r.StaleReads, r.AllowanceMs, r.Breaches, staleReads)
	}

	early := m
	early.fault.end = 0
	r := ph.judge(early)
	if r.OK || r.StaleBound == 0 || r.StaleBound > staleReads || !hasBreach(r, "more than 100ms after the fault ended") {
		t.Errorf("stale past the allowance: ok=%v, %d of %d beyond, breaches %q; want broken", r.OK, r.StaleBound, staleReads, r.Breaches)
	}
}

// TestFailedRequestsAgainstTheBounds: a replica that answers 503 until
// faultFor ends it. Its failures are counted, as reads and on its
// URL; they are allowed where the bound lets the fault's victim fail and
// break every other bound on failures.
func TestFailedRequestsAgainstTheBounds(t *testing.T) {
	t.Parallel()
	e, replicas := fakeEnv(t, 2)
	healthy, victim := replicas[0].url, replicas[1].url
	m, err := e.measure(t.Context(), Phase{Name: "failing", inject: faultFor(replicas[1], replicas[1].setFailing, victim)})
	if err != nil {
		t.Fatal(err)
	}
	sum := m.sum
	if sum.Failed == 0 || sum.Failures.ByTarget[victim] != sum.Failed || sum.Failures.ByTarget[healthy] != 0 ||
		sum.Failures.ByStatus["503"] != sum.Failed {
		t.Fatalf("failed %d, by target %v, by status %v: want every failure a 503 of %s", sum.Failed, sum.Failures.ByTarget, sum.Failures.ByStatus, victim)
	}
	if n := len(sum.Failures.Examples); n == 0 || n > 10 || int64(n) > sum.Failed {
		t.Fatalf("%d failure examples of %d failures", n, sum.Failed)
	}
	for _, e := range sum.Failures.Examples {
		if e.Target != victim || e.Status != 503 || e.Detail != "unavailable" || e.Method == "" || !strings.HasPrefix(e.Path, "/products") || e.AtS <= 0 {
			t.Errorf("failure example %+v, want a 503 of %s with its body", e, victim)
		}
	}
	for _, tt := range []struct {
		ph     Phase
		victim string
		breach string // "" when the phase passes
	}{
		{Phase{VictimOnly: true}, victim, ""},
		{Phase{VictimOnly: true}, healthy, "which was not the victim"},
		{Phase{VictimOnly: true}, healthy, " 503 after "}, // the breach shows a failure on the replica it names
		{Phase{NoFailedReads: true}, victim, "failed reads"},
		{Phase{NoFailures: true}, victim, fmt.Sprintf("%d failed requests", sum.Failed)},
		{Phase{}, victim, ""},
	} {
		m := m
		m.fault.victim = tt.victim
		r := tt.ph.judge(m)
		if r.Failed != sum.Failed || r.FailedReads == 0 || r.FailedReads > r.Failed {
			t.Errorf("%+v: failed %d, failed reads %d; want %d and some reads", tt.ph, r.Failed, r.FailedReads, sum.Failed)
		}
		if tt.breach == "" && !r.OK || tt.breach != "" && (r.OK || !hasBreach(r, tt.breach)) {
			t.Errorf("%+v, victim %s: ok=%v, breaches %q; want breach %q", tt.ph, tt.victim, r.OK, r.Breaches, tt.breach)
		}
	}
}

// TestHealthyPhaseAndTable: without a fault every bound holds, the fault's
// end is the start, every replica answers from L1 at once, and the table
// shows a broken phase with its breaches.
func TestHealthyPhaseAndTable(t *testing.T) {
	t.Parallel()
	e, _ := fakeEnv(t, 2)
	r, err := e.runPhase(t.Context(), Phases[0])
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Requests == 0 || r.Failed != 0 || r.StaleReads != 0 || r.LostWrites != 0 || r.L1BackMs < 0 {
		t.Errorf("baseline on healthy replicas: %+v", r)
	}
	broken := r
	broken.Name, broken.OK, broken.Breaches = "broken", false, []string{"3 stale reads"}
	var out bytes.Buffer
	(&Result{Phases: []PhaseResult{r, broken}}).WriteTable(&out)
	for _, want := range []string{"baseline", "ok", "BROKEN", "3 stale reads"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSelectPhases(t *testing.T) {
	t.Parallel()
	all, err := selectPhases(nil)
	if err != nil || len(all) != len(Phases) {
		t.Errorf("no names: %d phases, %v; want all %d", len(all), err, len(Phases))
	}
	got, err := selectPhases([]string{"net-cut", "baseline"})
	if err != nil || len(got) != 2 || got[0].Name != "net-cut" || got[1].Name != "baseline" {
		t.Errorf("two names: %v, %v; want net-cut then baseline", got, err)
	}
	if _, err := selectPhases([]string{"flood"}); err == nil || !strings.Contains(err.Error(), "redis-kill") {
		t.Errorf("unknown phase: %v, want an error listing the phases", err)
	}
}

func hasBreach(r PhaseResult, s string) bool {
	for _, b := range r.Breaches {
		if strings.Contains(b, s) {
			return true
		}
	}
	return false
}

// TestCounterDelta: a counter's growth over a phase, summed over the
// replicas; one restarted meanwhile (its counter lower than before) counts
// from zero, one that did not answer before counts from zero too; and a
// counter's sum over the replicas.
func TestCounterDelta(t *testing.T) {
	const c, other = "c_total", "other_total"
	before := counterReadings{"a": {c: 3, other: 50}, "b": {c: 10}}
	after := counterReadings{"a": {c: 5, other: 1}, "b": {c: 2}, "c": {c: 1, other: 4}}
	if d := after.delta(before, c); d != 2+2+1 {
		t.Errorf("delta %d, want 5", d)
	}
	if s := after.sum(other); s != 5 {
		t.Errorf("sum %d, want 5", s)
	}
}
