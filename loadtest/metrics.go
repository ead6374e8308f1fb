package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ReqType is the kind of request an iteration sends.
type ReqType int

// The request types.
const (
	ReqGet ReqType = iota
	ReqList
	ReqCreate
	ReqUpdate
	ReqDelete
	ReqBatch // GET /products?ids=: many keys in one request
	numReqTypes
)

var reqTypeNames = [numReqTypes]string{"get", "list", "create", "update", "delete", "batch"}

// String returns "get", "list", "create", "update", "delete" or "batch".
func (t ReqType) String() string { return reqTypeNames[t] }

// Latencies are recorded in microseconds, 1µs to 60s, 3 significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newLatencyHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Percentiles summarises a latency histogram in milliseconds.
type Percentiles struct {
	h *hdrhistogram.Histogram // for other quantiles; nil when decoded from JSON

	Count int64   `json:"count"`
	Avg   float64 `json:"avg"`
	Min   float64 `json:"min"`
	Med   float64 `json:"med"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	q := func(p float64) float64 { return float64(h.ValueAtQuantile(p)) / 1000 }
	return Percentiles{
		h:     h,
		Count: h.TotalCount(),
		Avg:   h.Mean() / 1000,
		Min:   float64(h.Min()) / 1000,
		Med:   q(50), P90: q(90), P95: q(95), P99: q(99), P999: q(99.9),
		Max: float64(h.Max()) / 1000,
	}
}

// quantile returns the pct-th percentile, from the histogram when there is
// one, otherwise the nearest stored percentile at or above pct.
func (p Percentiles) quantile(pct float64) float64 {
	if p.h != nil {
		return percentile(p.h, pct)
	}
	switch {
	case pct <= 50:
		return p.Med
	case pct <= 90:
		return p.P90
	case pct <= 95:
		return p.P95
	case pct <= 99:
		return p.P99
	case pct <= 99.9:
		return p.P999
	}
	return p.Max
}

// percentile returns the p-th percentile of h in milliseconds.
func percentile(h *hdrhistogram.Histogram, p float64) float64 {
	return float64(h.ValueAtQuantile(p)) / 1000
}

// window holds what one shard saw since the last tick.
type window struct {
	hist      [numReqTypes]*hdrhistogram.Histogram
	tierHist  [numTiers]*hdrhistogram.Histogram // GET /products/{id} latency by answering tier
	reqs      [numReqTypes]int64
	failed    [numReqTypes]int64
	checks    int64
	checksOK  int64
	tiers     [numReqTypes][numTiers]int64 // by Tier; a batch counts each of its keys
	collapsed int64
	failSafe  failSafeCounts
	iters     int64
	dropped   int64
	fails     failureCounts
	targets   map[string]TargetPoint // requests and failures by target
}

func newWindow() *window {
	w := &window{}
	for i := range w.hist {
		w.hist[i] = newLatencyHist()
	}
	for i := range w.tierHist {
		w.tierHist[i] = newLatencyHist()
	}
	return w
}

func (w *window) reset() {
	hist, tierHist := w.hist, w.tierHist
	for _, h := range hist {
		h.Reset()
	}
	for _, h := range tierHist {
		h.Reset()
	}
	fails := w.fails
	fails.reset()
	targets := w.targets
	clear(targets)
	*w = window{hist: hist, tierHist: tierHist, fails: fails, targets: targets}
}

// countTarget adds one request to target, failed or not.
func (w *window) countTarget(target string, failed int64) {
	if w.targets == nil {
		w.targets = make(map[string]TargetPoint)
	}
	t := w.targets[target]
	t.Requests++
	t.Errors += failed
	w.targets[target] = t
}

// merge adds o into w.
func (w *window) merge(o *window) {
	for i := range w.hist {
		w.hist[i].Merge(o.hist[i])
		w.reqs[i] += o.reqs[i]
		w.failed[i] += o.failed[i]
		for t := range w.tiers[i] {
			w.tiers[i][t] += o.tiers[i][t]
		}
	}
	for i := range w.tierHist {
		w.tierHist[i].Merge(o.tierHist[i])
	}
	w.checks += o.checks
	w.checksOK += o.checksOK
	w.collapsed += o.collapsed
	w.failSafe.merge(o.failSafe)
	w.iters += o.iters
	w.dropped += o.dropped
	w.fails.merge(&o.fails)
	for k, t := range o.targets {
		if w.targets == nil {
			w.targets = make(map[string]TargetPoint)
		}
		c := w.targets[k]
		c.Requests += t.Requests
		c.Errors += t.Errors
		w.targets[k] = c
	}
}

func (w *window) totalReqs() (n, failed int64) {
	for i := range w.reqs {
		n += w.reqs[i]
		failed += w.failed[i]
	}
	return n, failed
}

// shard is the part of the collector that some VUs write to; several shards
// keep the VUs from contending on one lock.
type shard struct {
	mu  sync.Mutex // guards cur
	cur *window
}

// sample is the outcome of one request.
type sample struct {
	typ     ReqType
	latency time.Duration
	failed  bool
	checks  int
	checkOK int
	cache   CacheStatus
	target  string // the base URL the request went to
	method  string // the request's method and path, for failure examples
	path    string
	code    int   // the status code; 0 when there was no response
	cause   Cause // the transport error, if any
	// keys counts a batch's keys by the tier that answered each.
	keys KeyTiers
	// failCode, when set, is the status the failure is filed under
	// instead of code: 404 for a batch that left out an existing id.
	failCode int
	// optIn: the read sent Cache-Control: stale-if-error=allowS; ageS is
	// the Age of a labelled fail-safe answer.
	optIn        bool
	allowS, ageS int64
}

// collector aggregates samples from all VUs into totals and a per-second
// time series.
type collector struct {
	shards []shard

	mu     sync.Mutex // guards the fields below
	total  *window    // everything merged so far
	sec    *window    // scratch: the second being closed
	free   *window    // an empty window to swap into a shard
	series []Point
	start  time.Time
	last   time.Time
}

func newCollector(nshards int, start time.Time) *collector {
	c := &collector{
		shards: make([]shard, nshards),
		total:  newWindow(), sec: newWindow(), free: newWindow(),
		start: start, last: start,
	}
	for i := range c.shards {
		c.shards[i].cur = newWindow()
	}
	return c
}

func (c *collector) shard(vu int) *shard { return &c.shards[vu%len(c.shards)] }

func (s *shard) add(x sample) {
	us := max(int64(x.latency/time.Microsecond), 1)
	s.mu.Lock()
	w := s.cur
	_ = w.hist[x.typ].RecordValue(min(us, histMax))
	if x.typ == ReqGet {
		_ = w.tierHist[x.cache.Tier].RecordValue(min(us, histMax))
	}
	w.reqs[x.typ]++
	failed := int64(0)
	if x.failed {
		w.failed[x.typ]++
		failed = 1
	}
	if x.target != "" {
		w.countTarget(x.target, failed)
	}
	w.checks += int64(x.checks)
	w.checksOK += int64(x.checkOK)
	if x.typ == ReqBatch {
		for t, n := range x.keys {
			w.tiers[x.typ][t] += n
		}
	} else {
		w.tiers[x.typ][x.cache.Tier]++
	}
	if x.cache.Collapsed {
		w.collapsed++
	}
	w.failSafe.add(&x)
	w.iters++
	w.fails.add(&x)
	s.mu.Unlock()
}

func (s *shard) drop() {
	s.mu.Lock()
	s.cur.dropped++
	s.mu.Unlock()
}

// tick closes the current interval: it swaps every shard's window for an
// empty one (holding the shard lock only for the swap), merges them into one
// point of the series and into the totals.
func (c *collector) tick(now time.Time, vus int) Point { return c.tickDB(now, vus, -1) }

// tickDB is tick with the interval's database queries.
func (c *collector) tickDB(now time.Time, vus int, dbQueries int64) Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		old := s.cur
		s.cur = c.free
		s.mu.Unlock()
		c.sec.merge(old)
		old.reset()
		c.free = old
	}
	p := pointOf(c.sec, now.Sub(c.start), now.Sub(c.last), vus)
	p.DBQueries = dbQueries
	c.total.merge(c.sec)
	c.sec.reset()
	c.last = now
	c.series = append(c.series, p)
	return p
}

// Point is one interval (about a second) of the time series.
type Point struct {
	T        float64 `json:"t"`   // seconds since the start, at the end of the interval
	VUs      int     `json:"vus"` // active VUs at the end of the interval
	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	Errors   int64   `json:"errors"`
	Dropped  int64   `json:"dropped"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	L1       float64 `json:"l1_ratio"`
	L2       float64 `json:"l2_ratio"`
	Origin   float64 `json:"origin_ratio"`
	L1Hits   int64   `json:"l1_hits"`
	L2Hits   int64   `json:"l2_hits"`
	// FailSafe counts the keys answered stale, labelled, from the
	// fail-safe store (stale-if-error): not hits, their own class.
	FailSafe int64 `json:"failsafe_served"`
	// DBQueries are the targets' database queries in the interval, -1
	// when not sampled (see RunOptions.SampleDB).
	DBQueries int64 `json:"db_queries"`
	// ByTarget are the interval's requests and failures per target (base
	// URL): the per-replica view over time.
	ByTarget map[string]TargetPoint `json:"by_target,omitempty"`
}

// TargetPoint is one target's part of a [Point].
type TargetPoint struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

func pointOf(w *window, at, dt time.Duration, vus int) Point {
	n, failed := w.totalReqs()
	all := newLatencyHist()
	for _, h := range w.hist {
		all.Merge(h)
	}
	tiers := w.readTiers()
	r := ratiosOf(tiers)
	p := Point{
		T: at.Seconds(), VUs: vus, Requests: n, Errors: failed, Dropped: w.dropped,
		P50: percentile(all, 50), P95: percentile(all, 95), P99: percentile(all, 99),
		L1: r.L1, L2: r.L2, Origin: r.Origin, L1Hits: tiers[TierL1], L2Hits: tiers[TierL2],
		FailSafe: tiers[TierFailSafe],
	}
	if dt > 0 {
		p.RPS = float64(n) / dt.Seconds()
	}
	if len(w.targets) > 0 {
		p.ByTarget = make(map[string]TargetPoint, len(w.targets))
		for k, t := range w.targets {
			p.ByTarget[k] = t
		}
	}
	return p
}

// readTiers sums the tiers of the cached reads (get, list and each key of
// a batch).
func (w *window) readTiers() [numTiers]int64 {
	var t [numTiers]int64
	for _, typ := range []ReqType{ReqGet, ReqList, ReqBatch} {
		for i := range t {
			t[i] += w.tiers[typ][i]
		}
	}
	return t
}

// HitRatios are the shares of classified reads answered by each tier; they
// add up to 1 when any read carried a Cache-Status header. FailSafe is the
// share answered stale, labelled, after the database failed (stale-if-error
// served): its own class, not a hit.
type HitRatios struct {
	L1         float64 `json:"l1"`
	L2         float64 `json:"l2"`
	Origin     float64 `json:"origin"`
	FailSafe   float64 `json:"failsafe"`
	Classified int64   `json:"classified"` // reads with a usable Cache-Status
	Unknown    int64   `json:"unknown"`    // reads without one
	// FailSafeServed counts the reads (keys, for a batch) answered from
	// the fail-safe store.
	FailSafeServed int64 `json:"failsafe_served"`
}

func ratiosOf(t [numTiers]int64) HitRatios {
	r := HitRatios{Unknown: t[TierUnknown], FailSafeServed: t[TierFailSafe]}
	r.Classified = t[TierL1] + t[TierL2] + t[TierOrigin] + t[TierFailSafe]
	if r.Classified > 0 {
		c := float64(r.Classified)
		r.L1, r.L2, r.Origin = float64(t[TierL1])/c, float64(t[TierL2])/c, float64(t[TierOrigin])/c
		r.FailSafe = float64(t[TierFailSafe]) / c
	}
	return r
}
