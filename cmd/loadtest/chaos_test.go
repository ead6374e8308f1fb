package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest/chaos"
)

// TestChaosEndToEnd runs two short phases of loadtest chaos (a replica
// SIGKILLed and restarted, backends terminated) on their private
// redis-server and database, and checks the table, the JSON figures, the
// bounds, and that the victim's failures are on the victim alone.
func TestChaosEndToEnd(t *testing.T) {
	res, text, code := runChaos(t, 300*time.Second, "-phase", "5s", "-phases", "replica-kill,pg-terminate")
	if len(res.Phases) != 2 || res.Phases[0].Name != "replica-kill" || res.Phases[1].Name != "pg-terminate" {
		t.Fatalf("phases %+v", res.Phases)
	}
	kill, pg := res.Phases[0], res.Phases[1]
	for _, p := range res.Phases {
		if p.Requests == 0 || p.LostWrites != 0 || p.Unverified != 0 || p.P99Ms <= 0 {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	if kill.Failed == 0 || len(kill.Failures.ByTarget) != 1 || kill.Failures.ByCause["refused"] == 0 {
		t.Errorf("replica-kill: failures %+v, want refused connections on the killed replica only", kill.Failures)
	}
	if pg.FailedReads != 0 {
		t.Errorf("pg-terminate: %d failed reads", pg.FailedReads)
	}
	t.Logf("pg-terminate: %d failed writes, %d of unknown outcome", pg.FailedWrites, pg.UnknownOutcomes)
	if pg.UnknownOutcomes > pg.FailedWrites {
		t.Errorf("pg-terminate: %d writes of unknown outcome, more than the %d failed writes", pg.UnknownOutcomes, pg.FailedWrites)
	}
	wantCode := 0
	if !res.OK {
		wantCode = exitThresholds
	}
	if code != wantCode || !strings.Contains(text, "replica-kill") || !strings.Contains(text, "L1 back") {
		t.Errorf("exit %d (ok %v), table:\n%s", code, res.OK, text)
	}
	if !res.OK {
		t.Errorf("a bound was broken:\n%s", text)
	}
}

// TestChaosDBOutage runs the db-outage phase: the database closed to the
// replicas under load, half the reads sending stale-if-error. Reads of
// both kinds are counted, none is stale without being labelled and asked
// for, and the database is open again afterwards (the lost-write check
// reads it).
func TestChaosDBOutage(t *testing.T) {
	res, text, code := runChaos(t, 300*time.Second, "-phase", "8s", "-phases", "db-outage")
	if len(res.Phases) != 1 {
		t.Fatalf("phases %+v", res.Phases)
	}
	p := res.Phases[0]
	if p.OptInReads == 0 || p.OtherReads == 0 || p.StaleReads != 0 || p.UnrequestedStale != 0 || p.OverAllowance != 0 ||
		p.LostWrites != 0 || p.Unverified != 0 || p.Failures.ByStatus["500"] != 0 {
		t.Errorf("db-outage: %+v\n%s", p, text)
	}
	if code != 0 || !res.OK || !strings.Contains(text, "stale-if-error") {
		t.Errorf("exit %d (ok %v), table:\n%s", code, res.OK, text)
	}
}

// TestChaosSentinelFailover runs the sentinel-failover phase: the replicas
// restarted in REDIS_MODE sentinel, the replica's replication link cut
// under load, the master killed and its replica promoted. The phase must
// have run a real failover (the promotion seen, requests counted) and
// kept its bound: no stale read 3 s after the promotion, no lost write.
func TestChaosSentinelFailover(t *testing.T) {
	res, text, code := runChaos(t, 300*time.Second, "-phase", "5s", "-phases", "sentinel-failover")
	if len(res.Phases) != 1 || res.Phases[0].Name != "sentinel-failover" {
		t.Fatalf("phases %+v\n%s", res.Phases, text)
	}
	p := res.Phases[0]
	if p.Skipped != "" {
		t.Skipf("sentinel-failover skipped: %s", p.Skipped)
	}
	if p.PromotionMs <= 0 || p.Requests == 0 || p.AllowanceMs != 3000 || p.LostWrites != 0 || p.Unverified != 0 {
		t.Errorf("sentinel-failover: %+v\n%s", p, text)
	}
	if code != 0 || !res.OK || !strings.Contains(text, "promotion seen") {
		t.Errorf("exit %d (ok %v), table:\n%s", code, res.OK, text)
	}
	t.Logf("stale reads %d (worst %.0f ms, %d beyond the allowance), failed %d of %d, promotion %.0f ms after the kill",
		p.StaleReads, p.WorstStale, p.StaleBound, p.Failed, p.Requests, p.PromotionMs)
}

// TestChaosThroughHAProxy runs the two restart phases of loadtest chaos
// through haproxy: the rolling restart of every replica fails no request
// and counts what each replica served while draining; the kill fails only
// requests in flight on the victim.
func TestChaosThroughHAProxy(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not on PATH: install Debian package haproxy (.ci/run does)")
	}
	res, text, code := runChaos(t, 300*time.Second, "-balancer", "haproxy", "-phase", "15s", "-phases", "replica-term,replica-kill")
	if len(res.Phases) != 2 {
		t.Fatalf("phases %+v", res.Phases)
	}
	term, kill := res.Phases[0], res.Phases[1]
	if term.Balancer != "haproxy" || term.Failed != 0 || len(term.Draining) != 3 || term.Requests == 0 {
		t.Errorf("replica-term through haproxy: %d failed of %d, draining %v, balancer %q", term.Failed, term.Requests, term.Draining, term.Balancer)
	}
	if kill.Balancer != "haproxy" || kill.Failed > 8 || kill.Failures.ByCause["refused"] != 0 {
		t.Errorf("replica-kill through haproxy: %d failed, %+v", kill.Failed, kill.Failures)
	}
	if code != 0 || !res.OK || !strings.Contains(text, "served while draining") {
		t.Errorf("exit %d (ok %v), table:\n%s", code, res.OK, text)
	}
}

// runChaos runs loadtest chaos with args on 300 products and 8 VUs, within
// limit (two phases and their set-up take under a minute on a quiet
// machine, over 120 s at load 29), and returns its JSON figures, its output and its exit code.
func runChaos(t *testing.T, limit time.Duration, args ...string) (chaos.Result, string, int) {
	t.Helper()
	ctx, _, productsd, lt := startE2E(t, limit)
	out := filepath.Join(t.TempDir(), "chaos.json")
	args = append([]string{"chaos", "-productsd", productsd, "-products", "300", "-vus", "8", "-out", "summary=" + out}, args...)
	text, code := runBinary(ctx, t, lt, args...)
	var res chaos.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("exit %d, no JSON: %v\n%s", code, err, text)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res, text, code
}
