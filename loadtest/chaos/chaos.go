// Package chaos runs the default load-test scenario against productsd
// replicas on a private redis-server and a private database while it
// injects one fault per phase, and checks each phase's figures against the
// bounds the README states. See [Run] and [Phases].
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/tcpproxy"
	"github.com/tiercache/productcache/loadtest"
	"github.com/tiercache/productcache/loadtest/cluster"
	"github.com/tiercache/productcache/loadtest/meter"
)

// Config configures [Run].
type Config struct {
	Binary string // the productsd binary
	// DatabaseURL names a PostgreSQL server; the run makes a database of
	// its own there and drops it at the end.
	DatabaseURL string
	Replicas    int           // default 3
	Phase       time.Duration // length of each phase; default 20s
	// Phases are the names of the phases to run, in order; default all of
	// [Phases].
	Phases   []string
	Products int // the key space; default 2000
	VUs      int // default 16
	// Output receives the output of the replicas and of redis-server; nil
	// discards it.
	Output io.Writer
	// Progress receives a line per second during each phase; nil for none.
	Progress io.Writer
	Logf     func(format string, args ...any)
	// Balancer, if "haproxy", puts an haproxy process (HAProxy names its
	// binary; default on the PATH) in front of the replicas for the
	// replica-kill and replica-term phases, checking /readyz as the k8s
	// readiness probe does, and starts the replicas with
	// SHUTDOWN_DELAY=2s. "" sends every phase straight to the replicas.
	Balancer string
	HAProxy  string
}

// balancerShutdownDelay is the replicas' SHUTDOWN_DELAY behind the
// balancer: longer than its check interval (500 ms) and one failed check,
// so it takes a replica out before the replica stops serving.
const balancerShutdownDelay = 2 * time.Second

// PhaseResult is the figures of one phase and the verdict on its bounds.
type PhaseResult struct {
	Name  string `json:"name"`
	Fault string `json:"fault"`
	Bound string `json:"bound"`

	Requests    int64             `json:"requests"`
	Failed      int64             `json:"failed"`
	FailedReads int64             `json:"failed_reads"`
	Failures    loadtest.Failures `json:"failures"`
	// StaleReads are reads older than 50 ms after an acknowledgement, over
	// the whole phase; StaleBound counts those that began after the
	// phase's allowance ended (the figure the bound is on).
	StaleReads  int64   `json:"stale_reads"`
	WorstStale  float64 `json:"worst_staleness_ms"`
	StaleBound  int64   `json:"stale_reads_beyond_allowance"`
	AllowanceMs float64 `json:"allowance_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// L1BackMs is the time from the end of the fault until every replica
	// answered a read from L1 again (-1: not within 10 s).
	L1BackMs   float64 `json:"l1_back_ms"`
	LostWrites int     `json:"lost_writes"`
	Unverified int     `json:"unverified_writes"`

	// Skipped says why the phase did not run ("" when it ran): what it
	// needs is not installed here. NotStarted says why what it needs
	// did not start, which breaks the phase.
	Skipped    string `json:"skipped,omitempty"`
	NotStarted string `json:"not_started,omitempty"`
	// The failover figures (sentinel-failover): the time from the master's
	// kill -9 until the promotion was seen, and, summed over the replicas,
	// the invalidations deferred because no replica acknowledged them
	// (WAIT) and the outbox replays after the master change; and the
	// stale reads that began after the promotion (within the allowance or
	// not).
	PromotionMs       float64 `json:"promotion_ms,omitempty"`
	StaleAfterPromote int64   `json:"stale_reads_after_promotion,omitempty"`
	// FailedWrites is the failed creates, updates and deletes;
	// UnknownOutcomes, of those, the writes the replicas could not tell
	// applied or not (the database connection lost after COMMIT was sent,
	// productsd_db_write_outcome_unknown_total); the others failed before
	// anything was sent or were refused.
	FailedWrites    int64 `json:"failed_writes"`
	UnknownOutcomes int64 `json:"write_outcome_unknown"`
	NotReplicated   int64 `json:"not_replicated,omitempty"`
	Replays         int64 `json:"outbox_replays,omitempty"`

	// The fail-safe (stale-if-error) figures, for the phases whose reads
	// opt in: the get and batch reads that sent stale-if-error and those
	// that did not, with their failures; the answers labelled stale
	// (keys, for batches), those to reads that had not opted in and those
	// older than the allowance (both must be 0), the oldest Age; and
	// LabelledOld, the labelled answers the probe found older than an
	// acknowledged write (asked for, so not stale reads).
	OptInReads  int64 `json:"opt_in_reads,omitempty"`
	OptInFailed int64 `json:"opt_in_failed,omitempty"`
	// Of OptInFailed, with a fault that began: ReadBefore, the reads whose
	// every key some target had answered before the fault began (a
	// fail-safe copy of each existed somewhere; each breaks the bound);
	// Unread, those with a key no answer had carried before it.
	OptInFailedReadBefore int64 `json:"opt_in_failed_read_before,omitempty"`
	OptInFailedUnread     int64 `json:"opt_in_failed_unread,omitempty"`
	OtherReads            int64 `json:"other_reads,omitempty"`
	OtherFailed           int64 `json:"other_failed,omitempty"`
	LabelledStale         int64 `json:"labelled_stale,omitempty"`
	UnrequestedStale      int64 `json:"unrequested_stale,omitempty"`
	OverAllowance         int64 `json:"over_allowance,omitempty"`
	MaxStaleAgeS          int64 `json:"max_stale_age_s,omitempty"`
	LabelledOld           int64 `json:"labelled_old,omitempty"`

	// Balancer is "haproxy" when the phase's load went through it.
	Balancer string `json:"balancer,omitempty"`
	// Draining is, for a rolling restart behind the balancer, how many
	// requests each replica served between its SIGTERM and its exit.
	Draining map[string]int64 `json:"served_while_draining,omitempty"`
	// InFlight is, for a kill behind the balancer, how many requests the
	// balancer had in flight on the victim just before the SIGKILL.
	InFlight int64 `json:"in_flight_at_kill,omitempty"`

	OK       bool              `json:"ok"`
	Breaches []string          `json:"breaches,omitempty"`
	Summary  *loadtest.Summary `json:"-"`
}

// Result is the outcome of [Run].
type Result struct {
	Phases []PhaseResult `json:"phases"`
	OK     bool          `json:"ok"`
}

// ErrBounds is returned (wrapped) when a phase broke a bound.
var ErrBounds = errors.New("chaos: a bound was broken")

// env is what the phases act on.
type env struct {
	cfg    Config
	redis  *cluster.RedisServer
	admin  *redis.Client   // to the private Redis, not through the proxy
	proxy  *tcpproxy.Proxy // between the last replica and Redis
	cl     *cluster.Cluster
	lb     *cluster.HAProxy // nil without Config.Balancer
	urls   []string         // the replicas' base URLs, which a restart keeps
	baseDB string           // the server's URL, for pg_terminate_backend
	dbName string           // the phase database, which db-outage closes
	app    string           // the replicas' application_name
	ids    []string
	ns     string            // the replicas' CACHE_NAMESPACE
	sen    *cluster.Sentinel // the sentinel-failover phase's Redis, while it runs
	// mix, when set, replaces the default scenario's request mix (a test
	// that needs many writes on a slow machine).
	mix *loadtest.Mix
}

// Run starts the private servers and the replicas, runs each phase, and
// returns the figures. It returns an error wrapping ErrBounds (with the
// result) when a phase broke its bound.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 3
	}
	if cfg.Phase <= 0 {
		cfg.Phase = 20 * time.Second
	}
	if cfg.Products <= 0 {
		cfg.Products = 2000
	}
	if cfg.VUs <= 0 {
		cfg.VUs = 16
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	phases, err := selectPhases(cfg.Phases)
	if err != nil {
		return nil, err
	}
	if cfg.Balancer != "" && cfg.Balancer != "haproxy" {
		return nil, fmt.Errorf("chaos: unknown balancer %q, want haproxy or none", cfg.Balancer)
	}
	e := &env{cfg: cfg, baseDB: cfg.DatabaseURL}
	stop, err := e.start(ctx)
	defer stop()
	if err != nil {
		return nil, err
	}
	res := &Result{OK: true}
	for _, ph := range phases {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		cfg.Logf("chaos: phase %s: %s", ph.Name, e.fault(ph))
		pr, err := e.runPhase(ctx, ph)
		if err != nil {
			return res, fmt.Errorf("chaos: phase %s: %w", ph.Name, err)
		}
		res.Phases = append(res.Phases, pr)
		res.OK = res.OK && pr.OK
		if err := e.heal(ctx); err != nil {
			return res, fmt.Errorf("chaos: after phase %s: %w", ph.Name, err)
		}
	}
	if !res.OK {
		return res, ErrBounds
	}
	return res, nil
}

// start makes the database, Redis, the proxy and the replicas, and seeds.
// stop undoes whatever was done, even on error.
func (e *env) start(ctx context.Context) (stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	dbURL, drop, err := cluster.TempDatabase(ctx, e.cfg.DatabaseURL, "loadtest_chaos")
	if err != nil {
		return stop, err
	}
	undo = append(undo, drop)
	u, err := url.Parse(dbURL)
	if err != nil {
		return stop, err
	}
	e.dbName = strings.TrimPrefix(u.Path, "/")
	e.app = "productsd-" + e.dbName // its backends, for pg_terminate_backend
	q := u.Query()
	q.Set("application_name", e.app)
	u.RawQuery = q.Encode()
	dbURL = u.String()
	e.cfg.Logf("chaos: database %s", cluster.Redact(dbURL))

	if e.redis, err = cluster.StartRedis(ctx, e.cfg.Output); err != nil {
		return stop, err
	}
	undo = append(undo, e.redis.Stop)
	e.admin = redis.NewClient(&redis.Options{Addr: e.redis.Addr(), ReadTimeout: 5 * time.Second, MaxRetries: -1})
	undo = append(undo, func() { _ = e.admin.Close() })
	if e.proxy, err = tcpproxy.New(e.redis.Addr()); err != nil {
		return stop, err
	}
	undo = append(undo, e.proxy.Close)
	e.cfg.Logf("chaos: redis-server on %s (replica %d through a proxy on %s)", e.redis.Addr(), e.cfg.Replicas-1, e.proxy.Addr())

	ns := fmt.Sprintf("chaos-%d", time.Now().UnixNano())
	e.ns = ns
	if err := cluster.Migrate(ctx, e.cfg.Binary, dbURL, nil); err != nil {
		return stop, err
	}
	if err := cluster.Seed(ctx, e.cfg.Binary, dbURL, e.cfg.Products, nil, "CACHE_NAMESPACE="+ns, "REDIS_URL="+e.redis.URL()); err != nil {
		return stop, err
	}
	last := e.cfg.Replicas - 1
	var env []string
	if e.cfg.Balancer != "" {
		env = append(env, "SHUTDOWN_DELAY="+balancerShutdownDelay.String())
	}
	e.cl, err = cluster.StartCluster(ctx, cluster.Config{
		Binary: e.cfg.Binary, DatabaseURL: dbURL, RedisURL: e.redis.URL(), Mode: "tiered",
		Replicas: e.cfg.Replicas, Namespace: ns, Output: e.cfg.Output, Env: env,
		RedisURLFor: func(i int) string {
			if i == last {
				return "redis://" + e.proxy.Addr() + "/0"
			}
			return ""
		},
	})
	if err != nil {
		return stop, err
	}
	undo = append(undo, e.cl.Stop)
	e.urls = e.cl.URLs()
	if e.cfg.Balancer != "" {
		if err := e.startBalancer(ctx); err != nil {
			return stop, err
		}
		undo = append(undo, e.lb.Stop)
	}
	e.cfg.DatabaseURL = dbURL
	client := loadtest.NewClient(8, 30*time.Second)
	defer client.CloseIdleConnections()
	e.ids, err = loadtest.EnsureProducts(ctx, client, e.urls[0], e.cfg.Products, nil, e.cfg.Logf)
	return stop, err
}

// heal makes sure everything runs and answers before the next phase.
func (e *env) heal(ctx context.Context) error {
	e.proxy.SetCut(false)
	e.proxy.SetLatency(0)
	if err := e.allowConnections(ctx, true); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := e.admin.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, r := range e.cl.Replicas() {
		if err := r.WaitReady(wctx); err != nil {
			return err
		}
	}
	return nil
}

// clock places a phase's events on the run's timeline.
type clock struct {
	done  <-chan struct{} // the phase's end
	start time.Time
	phase time.Duration
	probe *loadtest.Probe // the phase's, for the writes a fault makes
}

// d is the phase's length.
func (c clock) d() time.Duration { return c.phase }

// at waits until d after the run's start; false if the run ended first.
func (c clock) at(d time.Duration) bool {
	t := time.NewTimer(time.Until(c.start.Add(d)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// since is the time since the run's start.
func (c clock) since() time.Duration { return time.Since(c.start) }

// every runs f every period from `from` until `until` (both since the
// start).
func (c clock) every(from, until, period time.Duration, f func()) {
	for d := from; d < until; d += period {
		if !c.at(d) {
			return
		}
		f()
	}
}

// outcome is what a fault reports: when it ended (since the run's start)
// and which target, if any, was allowed to fail.
type outcome struct {
	end    time.Duration
	victim string
	// began is when the fault began, for the phases whose reads opt in to
	// stale-if-error: their failed opted-in reads are judged by whether
	// their keys had been answered before it (zero: not judged).
	began time.Time
	// promotion is the time from the master's kill to its replica's
	// promotion (a failover).
	promotion time.Duration
	err       error

	// Behind the balancer: the phase went through it; the requests each
	// replica served while draining (rolling restart); the requests in
	// flight on the victim at the kill, and the most that can be (one
	// per virtual user).
	balanced bool
	draining map[string]int64
	inFlight int64
	vus      int
}

// runPhase runs the default scenario for one phase while the phase's
// fault is injected, and judges the figures against its bounds.
func (e *env) runPhase(ctx context.Context, ph Phase) (PhaseResult, error) {
	if ph.topology != nil {
		undo, err := ph.topology(ctx, e)
		switch {
		case errors.Is(err, errSkip):
			e.cfg.Logf("chaos: phase %s skipped: %v", ph.Name, err)
			return PhaseResult{Name: ph.Name, Fault: ph.Fault, Bound: ph.Bound, Skipped: strings.TrimPrefix(err.Error(), errSkip.Error()+": "), L1BackMs: -1, OK: true}, nil
		case err != nil && ctx.Err() != nil:
			return PhaseResult{}, err
		case err != nil: // what the phase needs did not start: its verdict, not the run's end
			e.cfg.Logf("chaos: phase %s did not start: %v", ph.Name, err)
			return PhaseResult{Name: ph.Name, Fault: ph.Fault, Bound: ph.Bound, NotStarted: err.Error(), L1BackMs: -1,
				Breaches: []string{"did not start: " + err.Error()}}, nil
		}
		defer undo()
	}
	before := e.readCounters(ctx, unknownOutcomeMetric)
	m, err := e.measure(ctx, ph)
	if err != nil {
		return PhaseResult{}, err
	}
	r := ph.judge(m)
	after := e.readCounters(ctx, unknownOutcomeMetric, notReplicatedMetric, replaysMetric) // on the phase's replicas, before undo
	r.UnknownOutcomes = after.delta(before, unknownOutcomeMetric)
	if m.fault.promotion > 0 {
		r.NotReplicated, r.Replays = after.sum(notReplicatedMetric), after.sum(replaysMetric)
	}
	return r, nil
}

// measurement is what a phase measured, before its bounds judge it.
type measurement struct {
	sum    *loadtest.Summary
	probe  *loadtest.Probe // the run's, for the stale reads after the allowance
	reads  *loadtest.KeyReads
	fault  outcome
	l1Back float64
}

// measure runs the default scenario against the replicas and, from the
// moment its measured part begins, the phase's fault on the same clock.
func (e *env) measure(ctx context.Context, ph Phase) (measurement, error) {
	sc := loadtest.DefaultScenario()
	sc.Name = ph.Name
	sc.VUs = e.cfg.VUs
	length := max(e.cfg.Phase, ph.MinLength)
	sc.Duration = loadtest.Duration(length)
	sc.Setup.Products = len(e.ids)
	sc.Timeout = loadtest.Duration(5 * time.Second)
	sc.Thresholds = nil // the bounds below judge the phase
	if e.mix != nil {
		sc.Mix = *e.mix
	}
	sc.StaleIfError, sc.StaleIfErrorShare = loadtest.Duration(ph.StaleIfError), ph.StaleIfErrorShare
	if ph.BatchWeight > 0 {
		sc.Mix.Batch = ph.BatchWeight
	}
	probe := loadtest.NewProbe(loadtest.DefaultGrace)
	reads := loadtest.NewKeyReads()
	started := make(chan time.Time, 1)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan outcome, 1)
	l1Back := make(chan float64, 1)
	go func() {
		var start time.Time
		select {
		case start = <-started:
		case <-runCtx.Done():
			done <- outcome{err: runCtx.Err()}
			l1Back <- -1
			return
		}
		c := clock{done: runCtx.Done(), start: start, phase: length, probe: probe}
		o := outcome{}
		if ph.inject != nil {
			o = ph.inject(ctx, e, c)
		}
		done <- o
		l1Back <- e.l1Back(runCtx, c, o.end)
	}()
	opt := loadtest.RunOptions{
		Targets: e.targets(ph), IDs: e.ids, Probe: probe, KeyReads: reads, Progress: e.cfg.Progress, Settle: 3 * time.Second,
		OnStart: func(t time.Time) { started <- t },
	}
	if e.cfg.DatabaseURL != "" { // none behind fake targets
		cpu := meter.NewCPU(ctx, "", e.cfg.DatabaseURL)
		defer cpu.Close()
		opt.CPU, opt.Stored = cpu, meter.StoredVersions(e.cfg.DatabaseURL)
	}
	sum, err := loadtest.Run(ctx, &sc, opt)
	cancel()
	o := <-done
	back := <-l1Back
	if err != nil {
		return measurement{}, err
	}
	if o.err != nil && !errors.Is(o.err, context.Canceled) {
		return measurement{}, fmt.Errorf("inject: %w", o.err)
	}
	return measurement{sum: sum, probe: probe, reads: reads, fault: o, l1Back: back}, nil
}

// l1Back measures, from the end of the fault, how long until every
// replica answers a read from L1: a rarely read product, read twice (the
// first read may fill L1), until the second says productsd-l1; hit.
func (e *env) l1Back(ctx context.Context, c clock, end time.Duration) float64 {
	if !c.at(end) {
		return -1
	}
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	id := e.ids[len(e.ids)-1]
	deadline := time.Now().Add(10 * time.Second)
	for _, u := range e.urls {
		for {
			if l1Hit(ctx, client, u+"/products/"+id) {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return -1
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return float64(c.since()-end) / float64(time.Millisecond)
}

func l1Hit(ctx context.Context, client *http.Client, u string) bool {
	hit := false
	for range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		hit = resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Cache-Status"), "productsd-l1; hit")
	}
	return hit
}

// terminateBackends ends every PostgreSQL backend of the replicas.
func (e *env) terminateBackends(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, e.baseDB)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()) t`, e.app).Scan(&n)
	return n, err
}

// burn starts busy loops, one per CPU and then as many again, and stops
// them after d.
func (e *env) burn(ctx context.Context, d time.Duration) error {
	var procs []*cluster.Process
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
	}()
	for range 2 * runtime.NumCPU() {
		p, err := cluster.Start(ctx, "sh", []string{"-c", "while :; do :; done"}, nil, nil, nil)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
