package loadtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RunOptions are the per-run choices that are not part of the scenario.
type RunOptions struct {
	// Targets, when set, replace the scenario's targets: the replicas a
	// harness started.
	Targets []string
	// IDs, when set, is the key space: no listing, no seeding.
	IDs []string
	// Seed, when set, makes n missing products (for example with
	// `productsd seed`) instead of POST requests.
	Seed func(ctx context.Context, n int) error
	// Progress receives a status line about once a second; nil for none.
	Progress io.Writer
	// ProgressTTY rewrites one line in place ("\r") instead of printing
	// one line per second.
	ProgressTTY bool
	// Client sends the requests; nil means a client sized for the
	// scenario's VUs (one keep-alive connection per VU and target).
	Client *http.Client
	// Logf receives setup messages; nil discards them.
	Logf func(format string, args ...any)
	// Interval is the time-series resolution; default 1s.
	Interval time.Duration
	// Stored, when set, reads the versions the targets' database holds:
	// the lost-write check compares every acknowledged write with it too.
	Stored StoredVersions
	// CPU, when set, meters the parts of the system under test that do
	// not answer over HTTP (Redis, the database's backends) for the
	// summary's CPU per request; nil leaves them unmeasured.
	CPU CPUMeter
	// SampleDB reads the targets' database query counters at every
	// interval, for the time series (the HTML report's chart); off, the
	// targets are read only before and after the run.
	SampleDB bool
	// RedisMeter, when set, splits the targets' Redis CPU by command
	// family over the measured part (the summary's RedisCommands).
	RedisMeter RedisMeter
	// Probe, when set, is the consistency probe the run uses (it must be
	// new), so the caller can analyse it further afterwards, for example
	// with [Probe.AnalyzeSince].
	Probe *Probe
	// KeyReads, when set, records when each key was first answered and
	// the keys of the opted-in reads that failed, warmup included, so the
	// caller can tell those failures apart by the time a fault began
	// ([KeyReads.FailedOptIn]).
	KeyReads *KeyReads
	// Points, when set, receives every request as k6's --out json point
	// stream ([PointStream]); the caller closes it after the run.
	Points *PointStream
	// OnStart, when set, is called as the measured part of the run begins
	// (after setup and warmup) with its start: the origin of the probe's
	// times.
	OnStart func(start time.Time)
	// Settle is how long the lost-write check lets a read be wrong before
	// it counts (see [VerifyOptions]); default 2s.
	Settle time.Duration
}

// ErrThresholds is returned (wrapped) by callers that turn failed
// thresholds into an error; Run itself reports them in the summary.
var ErrThresholds = fmt.Errorf("loadtest: thresholds failed")

type runner struct {
	sc     *Scenario
	client *http.Client
	ids    []string
	keys   KeyChooser
	probe  *Probe
	reads  *KeyReads // RunOptions.KeyReads; nil records nothing
	ledger *Ledger
	probeN int // ids with rank below probeN are probed
	start  time.Time
	rr     atomic.Uint64

	statuses statusMemo   // Cache-Status classifications seen in this run
	points   *PointStream // RunOptions.Points
	examples failureExamples

	mixCum   [numReqTypes]float64
	mixTotal float64
	// staleIfError is the Cache-Control value opted-in reads send; "" when
	// none do.
	staleIfError string
}

// NewClient returns an HTTP client for n concurrent VUs: keep-alive
// connections, no compression, a per-request timeout.
func NewClient(n int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: n + 1,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// Run executes the scenario: setup, the executor, then the summary with
// its thresholds evaluated. sc is normalized in place. Cancelling ctx stops
// the run early; the summary covers what ran.
func Run(ctx context.Context, sc *Scenario, opt RunOptions) (*Summary, error) {
	if len(opt.Targets) > 0 {
		sc.Targets = opt.Targets
	}
	if err := sc.Normalize(); err != nil {
		return nil, err
	}
	thresholds, _ := ParseThresholds(sc.Thresholds) // validated by Normalize
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	client := opt.Client
	if client == nil {
		client = NewClient(sc.MaxActiveVUs(), time.Duration(sc.Timeout))
		defer client.CloseIdleConnections()
	}
	r := &runner{sc: sc, client: client, ledger: NewLedger(), points: opt.Points}
	ids := opt.IDs
	if len(ids) == 0 {
		var err error
		if ids, err = EnsureProducts(ctx, client, sc.Targets[0], sc.Setup.Products, opt.Seed, logf); err != nil {
			return nil, err
		}
	}
	r.ids = ids
	r.reads = opt.KeyReads
	r.reads.track(len(ids))
	var err error
	if r.keys, err = NewKeyChooser(sc.Keys, len(ids)); err != nil {
		return nil, err
	}
	r.setupMix()
	if sc.StaleIfError > 0 {
		r.staleIfError = "stale-if-error=" + strconv.FormatInt(int64(time.Duration(sc.StaleIfError)/time.Second), 10)
	}
	if sc.Probe.Enabled {
		r.probe = opt.Probe
		if r.probe == nil {
			r.probe = NewProbe(time.Duration(sc.Probe.Grace))
		}
		r.probeN = min(sc.Probe.Sample, len(ids))
		for _, id := range ids[:r.probeN] {
			r.probe.Track(id)
		}
	} else {
		r.probe = NewProbe(0) // tracks nothing
	}
	if sc.Warmup > 0 {
		logf("warmup: %v", time.Duration(sc.Warmup))
		r.warmup(ctx)
	}
	meter := opt.CPU
	if meter == nil {
		meter = noCPUMeter{}
	}
	before, cpuBefore := snapshotTargets(ctx, client, sc.Targets)
	procBefore := meter.Snapshot(ctx)
	actx := context.WithoutCancel(ctx) // also after Ctrl-C
	sum := measureRedis(ctx, actx, opt.RedisMeter, func() *Summary { return r.execute(ctx, opt) })
	procAfter := meter.Snapshot(actx)
	after, cpuAfter := snapshotTargets(actx, client, sc.Targets)
	sum.Interrupted = ctx.Err() != nil
	sum.DB = dbDelta(before, after, sum.Requests, sum.DurationS)
	sum.CPU = cpuDelta(procBefore, procAfter, cpuBefore, cpuAfter, sum.Requests)
	if sc.Probe.Enabled {
		sum.Consistency = r.probe.Analyze()
	}
	sum.KeySpace = len(ids)
	sum.LostWrites, err = r.ledger.Verify(context.WithoutCancel(ctx), client,
		VerifyOptions{Targets: sc.Targets, Stored: opt.Stored, Settle: opt.Settle})
	if err != nil {
		return nil, err
	}
	sum.Evaluate(append(thresholds, lostWritesThreshold))
	return sum, nil
}

func (r *runner) setupMix() {
	for i, w := range r.sc.Mix.weights() {
		r.mixTotal += w
		r.mixCum[i] = r.mixTotal
	}
}

// stopOnCancel returns a channel closed when ctx is cancelled; release ends
// the watch.
func stopOnCancel(ctx context.Context) (<-chan struct{}, func()) {
	stop, finished := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-finished:
		}
	}()
	return stop, func() { close(finished) }
}

// warmup runs the workload for sc.Warmup with results going nowhere: its
// own collector, a probe that tracks no id, no point stream, its own
// iteration budget.
func (r *runner) warmup(ctx context.Context) {
	probe, points := r.probe, r.points
	r.probe, r.points = NewProbe(0), nil
	defer func() { r.probe, r.points = probe, points }()
	r.start = time.Now()
	coll := newCollector(1, r.start)
	vus := r.sc.VUs
	if r.sc.Executor != ConstantVUs {
		vus = r.sc.MaxActiveVUs()
	}
	ex := newExecutor(func(id int) *vu {
		return &vu{id: id, rng: rand.New(rand.NewPCG(r.sc.Seed^0x5eed, uint64(id))), shard: coll.shard(id)}
	}, r.iterate, 0)
	stop, release := stopOnCancel(ctx)
	defer release()
	ex.constantVUs(ctx, stop, vus, time.Duration(r.sc.Warmup))
}

// execute runs the executor with the time-series ticker beside it.
func (r *runner) execute(ctx context.Context, opt RunOptions) *Summary {
	interval := opt.Interval
	if interval <= 0 {
		interval = time.Second
	}
	sc := r.sc
	r.start = time.Now()
	if opt.OnStart != nil {
		opt.OnStart(r.start)
	}
	coll := newCollector(min(4*runtime.GOMAXPROCS(0), 16), r.start)
	newVU := func(id int) *vu {
		return &vu{id: id, rng: rand.New(rand.NewPCG(sc.Seed, uint64(id))), shard: coll.shard(id)}
	}
	stop, release := stopOnCancel(ctx)
	defer release()
	execs := r.executors(newVU, coll)
	active := func() int {
		n := int64(0)
		for _, e := range execs {
			n += e.ex.active.Load()
		}
		return int(n)
	}
	var wg sync.WaitGroup
	tickDone := make(chan struct{})
	wg.Go(func() { r.ticker(coll, active, interval, tickDone, opt) })
	var runs sync.WaitGroup
	for _, e := range execs {
		runs.Go(func() {
			if e.start > 0 {
				t := time.NewTimer(e.start)
				defer t.Stop()
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
			runExecutor(ctx, stop, e.ex, e.sc)
		})
	}
	runs.Wait()
	close(tickDone)
	wg.Wait()
	end := time.Now()
	coll.tick(end, 0)
	if opt.Progress != nil && opt.ProgressTTY {
		fmt.Fprintln(opt.Progress)
	}
	var dropped int64
	for _, e := range execs {
		dropped += e.ex.dropped.Load()
	}
	return r.summarize(coll, end, dropped)
}

// plannedExec is one executor of a run and when it starts.
type plannedExec struct {
	sc    *Scenario
	ex    *executor
	start time.Duration
}

// executors are the run's executors: the scenario's own, or one per entry
// of its scenarios block, each with VU ids of its own.
func (r *runner) executors(newVU func(int) *vu, coll *collector) []plannedExec {
	subs := []*Scenario{r.sc}
	var starts []time.Duration
	if len(r.sc.Scenarios) > 0 {
		subs = subs[:0]
		for _, name := range r.sc.ScenarioNames() {
			sub, _ := r.sc.Sub(name) // validated by Normalize
			subs = append(subs, sub)
			starts = append(starts, time.Duration(r.sc.Scenarios[name].StartTime))
		}
	}
	var out []plannedExec
	offset := 0
	for i, sub := range subs {
		base := offset
		ex := newExecutor(func(id int) *vu { return newVU(base + id) }, r.iterate, r.sc.MaxRequests)
		ex.onDrop = func() { coll.shard(0).drop() }
		p := plannedExec{sc: sub, ex: ex}
		if starts != nil {
			p.start = starts[i]
		}
		out = append(out, p)
		offset += sub.MaxActiveVUs()
	}
	return out
}

// runExecutor runs sc's executor on ex until it ends or stop closes.
func runExecutor(ctx context.Context, stop <-chan struct{}, ex *executor, sc *Scenario) {
	switch sc.Executor {
	case ConstantVUs:
		ex.constantVUs(ctx, stop, sc.VUs, time.Duration(sc.Duration))
	case RampingVUs:
		ex.rampingVUs(ctx, stop, sc.StartVUs, sc.Stages, 50*time.Millisecond)
	case ConstantArrivalRate:
		ex.arrivalRate(ctx, stop, constantSchedule(sc.Rate, time.Duration(sc.TimeUnit), time.Duration(sc.Duration)), sc.PreAllocatedVUs, sc.MaxVUs)
	case RampingArrivalRate:
		ex.arrivalRate(ctx, stop, rampingSchedule(sc.StartRate, sc.Stages, time.Duration(sc.TimeUnit)), sc.PreAllocatedVUs, sc.MaxVUs)
	}
}

// ticker closes a time-series point every interval and prints progress.
func (r *runner) ticker(coll *collector, active func() int, interval time.Duration, done <-chan struct{}, opt RunOptions) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var reqs, errs int64
	var prevDB int64 = -1
	if opt.SampleDB {
		prevDB = r.dbTotal()
	}
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			dbq := int64(-1)
			if prevDB >= 0 {
				if n := r.dbTotal(); n >= 0 {
					dbq, prevDB = n-prevDB, n
				}
			}
			p := coll.tickDB(now, active(), dbq)
			reqs += p.Requests
			errs += p.Errors
			if opt.Progress != nil {
				writeProgress(opt.Progress, opt.ProgressTTY, p, reqs, errs)
			}
		}
	}
}

// dbTotal is the targets' database queries so far, -1 if one did not
// answer.
func (r *runner) dbTotal() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	snap, _ := snapshotTargets(ctx, r.client, r.sc.Targets)
	if len(snap) != len(r.sc.Targets) {
		return -1
	}
	var n float64
	for _, ops := range snap {
		for op, v := range ops {
			if op != "seed" {
				n += v
			}
		}
	}
	return int64(n)
}

func writeProgress(w io.Writer, tty bool, p Point, reqs, errs int64) {
	line := fmt.Sprintf("running %5.1fs  vus %4d  reqs %9d  rate %8.0f/s  errors %d  p99 %s  L1 %5.1f%%  L2 %5.1f%%",
		p.T, p.VUs, reqs, p.RPS, errs, FormatMs(p.P99), 100*p.L1, 100*p.L2)
	if tty {
		fmt.Fprintf(w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(w, line)
	}
}

// summarize turns the collector's totals into a summary.
func (r *runner) summarize(coll *collector, end time.Time, dropped int64) *Summary {
	coll.mu.Lock()
	defer coll.mu.Unlock()
	w := coll.total
	n, failed := w.totalReqs()
	all := newLatencyHist()
	s := &Summary{
		Scenario: r.sc.Name, Executor: r.sc.executorText(), Targets: r.sc.Targets,
		Start: r.start, DurationS: end.Sub(r.start).Seconds(), VUsMax: r.sc.MaxActiveVUs(),
		Iterations: w.iters, Dropped: dropped,
		Requests: n, Failed: failed, FailRate: ratio(failed, n),
		Types:     map[string]TypeSummary{},
		Cache:     ratiosOf(w.readTiers()),
		Collapsed: w.collapsed,
		FailSafe:  w.failSafe.summary(time.Duration(r.sc.StaleIfError)),
		Series:    coll.series,
	}
	if s.DurationS > 0 {
		s.RPS = float64(n) / s.DurationS
	}
	s.StatusCodes, s.Failures = w.fails.summary()
	s.Failures.Examples = r.examples.all()
	s.Checks = CheckResult{Passes: w.checksOK, Fails: w.checks - w.checksOK, Rate: ratio(w.checksOK, w.checks)}
	for t := range numReqTypes {
		all.Merge(w.hist[t])
		if w.reqs[t] == 0 {
			continue
		}
		ts := TypeSummary{Requests: w.reqs[t], Failed: w.failed[t], Latency: percentilesOf(w.hist[t])}
		if t == ReqGet || t == ReqList || t == ReqBatch {
			c := ratiosOf(w.tiers[t])
			ts.Cache = &c
		}
		s.Types[t.String()] = ts
	}
	s.Latency = percentilesOf(all)
	s.TierLatency = map[string]Percentiles{}
	for t, h := range w.tierHist {
		if h.TotalCount() > 0 {
			s.TierLatency[Tier(t).String()] = percentilesOf(h)
		}
	}
	return s
}
