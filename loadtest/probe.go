package loadtest

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// DefaultGrace is the window after a write's acknowledgement within which an
// older version may still be read without counting as stale (docs/design.md §6).
const DefaultGrace = 50 * time.Millisecond

// Probe is the consistency probe. For each sampled id it logs acknowledged
// writes (version, ack time) and reads (begin time, version returned); after
// the run, [Probe.Analyze] flags every read that began more than Grace after
// some write's acknowledgement and returned a version older than that
// write's. A read that began before an acknowledgement is concurrent with
// that write and may legitimately return either version, so it is never
// flagged because of it.
//
// Checking after the run, not as reads arrive, matters: a writer goroutine
// may record its acknowledgement later than a reader that began after the
// acknowledgement records its read.
//
// Times are durations since a common origin (the run's start). The zero
// value is not usable; call [NewProbe].
type Probe struct {
	grace time.Duration

	mu  sync.Mutex // guards ids
	ids map[string]*probeLog
}

type probeLog struct {
	writes []probeEvent // at = acknowledgement
	reads  []probeEvent // at = begin
	// labelled are reads answered stale from the fail-safe store and
	// labelled so (stale-if-error, asked for by the read): checked like
	// reads, but counted apart, never as stale reads.
	labelled []probeEvent
}

type probeEvent struct {
	at      time.Duration
	version int64
}

// NewProbe returns a probe with the given grace window (0 means none).
func NewProbe(grace time.Duration) *Probe {
	return &Probe{grace: grace, ids: map[string]*probeLog{}}
}

// Track adds id to the sampled set; events for other ids are ignored.
func (p *Probe) Track(id string) {
	p.mu.Lock()
	if p.ids[id] == nil {
		p.ids[id] = &probeLog{}
	}
	p.mu.Unlock()
}

// Tracked reports whether id is sampled.
func (p *Probe) Tracked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[id] != nil
}

// Write logs an acknowledged write of version to id at ack.
func (p *Probe) Write(id string, version int64, ack time.Duration) {
	p.mu.Lock()
	if l := p.ids[id]; l != nil {
		l.writes = append(l.writes, probeEvent{at: ack, version: version})
	}
	p.mu.Unlock()
}

// Read logs a read of id that began at begin and returned version.
func (p *Probe) Read(id string, version int64, begin time.Duration) {
	p.read(id, version, begin, false)
}

// ReadLabelled logs a read that the server answered from its fail-safe
// store and labelled stale (stale-if-error, which the read sent): an older
// version it returned is counted in ProbeResult.Labelled*, not as a stale
// read.
func (p *Probe) ReadLabelled(id string, version int64, begin time.Duration) {
	p.read(id, version, begin, true)
}

func (p *Probe) read(id string, version int64, begin time.Duration, labelled bool) {
	p.mu.Lock()
	if l := p.ids[id]; l != nil {
		e := probeEvent{at: begin, version: version}
		if labelled {
			l.labelled = append(l.labelled, e)
		} else {
			l.reads = append(l.reads, e)
		}
	}
	p.mu.Unlock()
}

// ProbeResult is the outcome of the consistency probe.
type ProbeResult struct {
	Enabled    bool    `json:"enabled"`
	SampledIDs int     `json:"sampled_ids"`
	GraceMs    float64 `json:"grace_ms"`
	Writes     int64   `json:"writes"`
	Reads      int64   `json:"reads"`
	// ReadsAfterWrite counts reads that began after at least one
	// acknowledged write to the same id: the reads that could be stale.
	ReadsAfterWrite int64 `json:"reads_after_write"`
	// StaleReads counts reads that returned an older version more than
	// the grace window after the newer version's acknowledgement.
	StaleReads int64 `json:"stale_reads"`
	// WithinGrace counts reads that returned an older version within the
	// grace window.
	WithinGrace int64 `json:"stale_within_grace"`
	// MaxStalenessMs is the largest gap between an acknowledgement and a
	// read that still returned an older version (including within grace).
	MaxStalenessMs float64 `json:"max_staleness_ms"`
	// Staleness is the distribution of that gap over all old-version reads.
	Staleness Percentiles `json:"staleness"`
	// Buckets counts old-version reads by that gap: the window within
	// which reads were still stale, le_ms being the bucket's upper bound
	// (0 for the last, unbounded one).
	Buckets []StalenessBucket `json:"staleness_buckets"`
	// Series has, per second of the run, the reads that returned an
	// older version and the largest gap from the acknowledgement that
	// made it old: how long invalidation took, as readers saw it.
	Series []ProbePoint `json:"series,omitempty"`
	// ConsistentRatio is 1 - stale_reads/reads_after_write.
	ConsistentRatio float64 `json:"consistent_ratio"`
	// LabelledReads counts the reads answered from the fail-safe store
	// and labelled stale (stale-if-error); LabelledStale those of them
	// that returned a version older than one acknowledged more than the
	// grace before: asked for and labelled, so not stale reads, but
	// counted here. They are in none of the figures above.
	LabelledReads int64 `json:"labelled_reads"`
	LabelledStale int64 `json:"labelled_stale"`
}

// ProbePoint is one second of [ProbeResult.Series]: T is its end, in
// seconds since the start.
type ProbePoint struct {
	T           float64 `json:"t"`
	StaleReads  int64   `json:"stale_reads"`
	WithinGrace int64   `json:"within_grace"`
	MaxGapMs    float64 `json:"max_gap_ms"`
}

// addToSeries counts an old-version read that began at (since the start)
// with its gap.
func addToSeries(series *[]ProbePoint, at, gap, grace time.Duration) {
	i := max(int(at/time.Second), 0)
	for len(*series) <= i {
		*series = append(*series, ProbePoint{T: float64(len(*series) + 1)})
	}
	p := &(*series)[i]
	if gap > grace {
		p.StaleReads++
	} else {
		p.WithinGrace++
	}
	p.MaxGapMs = max(p.MaxGapMs, ms(gap))
}

// StalenessBucket is one bar of the staleness histogram.
type StalenessBucket struct {
	LeMs  float64 `json:"le_ms"` // 0: no upper bound
	Count int64   `json:"count"`
}

// stalenessBounds are the buckets' upper bounds in milliseconds.
var stalenessBounds = []float64{1, 5, 10, 50, 100, 250, 500, 1000, 5000, 30000, 0}

func newBuckets() []StalenessBucket {
	b := make([]StalenessBucket, len(stalenessBounds))
	for i, le := range stalenessBounds {
		b[i].LeMs = le
	}
	return b
}

func addToBuckets(b []StalenessBucket, gapMs float64) {
	for i := range b {
		if b[i].LeMs == 0 || gapMs <= b[i].LeMs {
			b[i].Count++
			return
		}
	}
}

// Analyze checks every logged read against the writes of its id.
func (p *Probe) Analyze() ProbeResult { return p.AnalyzeSince(0) }

// AnalyzeSince is [Probe.Analyze] restricted to the reads that began at or
// after since (all writes still count): for example the reads after a
// fault had ended and the system had had its allowance to catch up.
func (p *Probe) AnalyzeSince(since time.Duration) ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	res := ProbeResult{Enabled: true, SampledIDs: len(p.ids), GraceMs: ms(p.grace), Buckets: newBuckets()}
	hist := newLatencyHist()
	for _, l := range p.ids {
		analyzeID(l, p.grace, since, &res, hist)
	}
	res.Staleness = percentilesOf(hist)
	if res.ReadsAfterWrite > 0 {
		res.ConsistentRatio = 1 - float64(res.StaleReads)/float64(res.ReadsAfterWrite)
	} else {
		res.ConsistentRatio = 1
	}
	return res
}

// analyzeID sorts the writes by acknowledgement and keeps a running maximum
// of the versions acknowledged so far; a read beginning at b must return at
// least the maximum acknowledged before b.
func analyzeID(l *probeLog, grace, since time.Duration, res *ProbeResult, hist *hdrhistogram.Histogram) {
	res.Writes += int64(len(l.writes))
	res.Reads += int64(len(l.reads))
	res.LabelledReads += int64(len(l.labelled))
	if len(l.writes) == 0 {
		return
	}
	w := append([]probeEvent(nil), l.writes...)
	sort.Slice(w, func(i, j int) bool { return w[i].at < w[j].at })
	maxv := make([]int64, len(w)) // maxv[i] = max version among w[:i+1]
	for i, e := range w {
		maxv[i] = e.version
		if i > 0 && maxv[i-1] > e.version {
			maxv[i] = maxv[i-1]
		}
	}
	for _, r := range l.labelled {
		if gap, ok := staleGap(w, maxv, r); ok && r.at >= since && gap > grace {
			res.LabelledStale++
		}
	}
	for _, r := range l.reads {
		if r.at < since {
			continue
		}
		n := sort.Search(len(w), func(i int) bool { return w[i].at >= r.at }) // acks strictly before r.at
		if n == 0 {
			continue
		}
		res.ReadsAfterWrite++
		gap, old := staleGap(w, maxv, r)
		if !old {
			continue
		}
		res.MaxStalenessMs = max(res.MaxStalenessMs, ms(gap))
		_ = hist.RecordValue(max(int64(gap/time.Microsecond), 1))
		addToBuckets(res.Buckets, ms(gap))
		addToSeries(&res.Series, r.at, gap, grace)
		if gap > grace {
			res.StaleReads++
		} else {
			res.WithinGrace++
		}
	}
}

// staleGap says whether read r returned a version older than one
// acknowledged before it began, and how long before: from the first
// acknowledgement that made r's version obsolete. w is sorted by
// acknowledgement, maxv its running maximum of versions.
func staleGap(w []probeEvent, maxv []int64, r probeEvent) (time.Duration, bool) {
	n := sort.Search(len(w), func(i int) bool { return w[i].at >= r.at }) // acks strictly before r.at
	if n == 0 || r.version >= maxv[n-1] {
		return 0, false
	}
	j := sort.Search(n, func(i int) bool { return maxv[i] > r.version })
	return r.at - w[j].at, true
}
