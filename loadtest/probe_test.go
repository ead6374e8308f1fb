package loadtest

import (
	"math"
	"reflect"
	"testing"
	"time"
)

const msec = time.Millisecond

func TestProbe(t *testing.T) {
	type ev struct {
		write   bool
		at      time.Duration
		version int64
	}
	tests := []struct {
		name        string
		events      []ev
		stale       int64
		withinGrace int64
		after       int64
		worstMs     float64
	}{
		{name: "stale read injected", events: []ev{
			{write: true, at: 100 * msec, version: 2},
			{at: 400 * msec, version: 1}, // 300ms after the ack: stale
			{at: 450 * msec, version: 2},
		}, stale: 1, after: 2, worstMs: 300},
		{name: "concurrent read is not flagged", events: []ev{
			{at: 90 * msec, version: 1}, // began before the ack
			{write: true, at: 100 * msec, version: 2},
			{at: 100 * msec, version: 1}, // began at the ack, not after
		}, after: 0},
		{name: "old version within grace", events: []ev{
			{write: true, at: 100 * msec, version: 2},
			{at: 120 * msec, version: 1},
		}, withinGrace: 1, after: 1, worstMs: 20},
		{name: "staleness counts from the first newer ack", events: []ev{
			{write: true, at: 100 * msec, version: 2},
			{write: true, at: 300 * msec, version: 3},
			{at: 400 * msec, version: 2}, // stale w.r.t. v3 by 100ms
			{at: 500 * msec, version: 1}, // stale w.r.t. v2 by 400ms
			{at: 500 * msec, version: 3},
		}, stale: 2, after: 3, worstMs: 400},
		{name: "acks out of version order", events: []ev{
			{write: true, at: 200 * msec, version: 2}, // acked after v3: the writes overlapped
			{write: true, at: 100 * msec, version: 3},
			{at: 250 * msec, version: 2}, // v3 was acked 150ms earlier
		}, stale: 1, after: 1, worstMs: 150},
		{name: "newer than acked is fine", events: []ev{
			{write: true, at: 100 * msec, version: 2},
			{at: 300 * msec, version: 3}, // a write in flight
		}, after: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProbe(50 * msec)
			p.Track("a")
			for _, e := range tt.events {
				if e.write {
					p.Write("a", e.version, e.at)
				} else {
					p.Read("a", e.version, e.at)
				}
			}
			p.Read("untracked", 0, time.Hour) // ignored
			got := p.Analyze()
			if got.StaleReads != tt.stale || got.WithinGrace != tt.withinGrace || got.ReadsAfterWrite != tt.after {
				t.Errorf("stale=%d within=%d after=%d, want %d %d %d", got.StaleReads, got.WithinGrace, got.ReadsAfterWrite, tt.stale, tt.withinGrace, tt.after)
			}
			if got.MaxStalenessMs != tt.worstMs {
				t.Errorf("worst staleness %vms, want %vms", got.MaxStalenessMs, tt.worstMs)
			}
			if got.SampledIDs != 1 {
				t.Errorf("sampled %d ids, want 1", got.SampledIDs)
			}
		})
	}
}

func TestProbeStalenessDistribution(t *testing.T) {
	p := NewProbe(50 * msec)
	p.Track("x")
	p.Write("x", 2, 0)
	for i := 1; i <= 100; i++ {
		p.Read("x", 1, time.Duration(i)*10*msec) // 10ms .. 1000ms after the ack
	}
	got := p.Analyze()
	if got.StaleReads != 95 || got.WithinGrace != 5 {
		t.Errorf("stale=%d within=%d, want 95 5", got.StaleReads, got.WithinGrace)
	}
	if got.Staleness.Count != 100 || got.Staleness.Med < 495 || got.Staleness.Med > 505 {
		t.Errorf("staleness distribution %+v, want 100 samples with median 500ms", got.Staleness)
	}
	counts := map[float64]int64{}
	for _, b := range got.Buckets {
		counts[b.LeMs] = b.Count
	}
	// 10ms; 20..50ms; 60..100ms; 110..250ms; 260..500ms; 510..1000ms.
	want := map[float64]int64{1: 0, 5: 0, 10: 1, 50: 4, 100: 5, 250: 15, 500: 25, 1000: 50, 5000: 0, 30000: 0, 0: 0}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("staleness buckets %v, want %v", counts, want)
	}
	if want := 0.05; math.Abs(got.ConsistentRatio-want) > 1e-9 {
		t.Errorf("consistent ratio %v, want %v", got.ConsistentRatio, want)
	}
}

// TestProbeAnalyzeSince: reads that began before since are left out, the
// writes before since still count.
func TestProbeAnalyzeSince(t *testing.T) {
	p := NewProbe(50 * time.Millisecond)
	p.Track("a")
	p.Write("a", 2, 100*time.Millisecond)
	p.Read("a", 1, 500*time.Millisecond)  // stale, before since
	p.Read("a", 1, 1500*time.Millisecond) // stale, after since
	p.Read("a", 2, 1600*time.Millisecond)
	if all := p.Analyze(); all.StaleReads != 2 {
		t.Fatalf("Analyze: %d stale reads, want 2", all.StaleReads)
	}
	r := p.AnalyzeSince(time.Second)
	if r.StaleReads != 1 || r.ReadsAfterWrite != 2 || r.MaxStalenessMs != 1400 {
		t.Fatalf("AnalyzeSince(1s): %+v, want 1 stale read of 2 after the write, 1400ms old", r)
	}
}

// TestProbeSeries: old-version reads are counted in the second they began,
// stale or within the grace window, with the largest gap of that second.
func TestProbeSeries(t *testing.T) {
	p := NewProbe(50 * time.Millisecond)
	p.Track("a")
	p.Write("a", 2, 100*time.Millisecond)
	p.Read("a", 1, 120*time.Millisecond)  // second 0, within grace (20ms)
	p.Read("a", 1, 1500*time.Millisecond) // second 1, stale (1400ms)
	p.Read("a", 2, 1600*time.Millisecond) // current: not counted
	res := p.Analyze()
	if len(res.Series) != 2 {
		t.Fatalf("got %d points, want 2: %+v", len(res.Series), res.Series)
	}
	if s0, s1 := res.Series[0], res.Series[1]; s0.WithinGrace != 1 || s0.StaleReads != 0 || s0.MaxGapMs != 20 ||
		s1.StaleReads != 1 || s1.MaxGapMs != 1400 || s1.T != 2 {
		t.Fatalf("got %+v", res.Series)
	}
}

// TestProbeLabelledStaleIsNotAStaleRead: an old version the server
// labelled stale (stale-if-error, asked for) is counted apart; the same
// old version unlabelled is a stale read.
func TestProbeLabelledStaleIsNotAStaleRead(t *testing.T) {
	p := NewProbe(50 * msec)
	p.Track("a")
	p.Write("a", 2, 100*msec)
	p.ReadLabelled("a", 1, 400*msec) // stale by 300ms, labelled
	p.ReadLabelled("a", 2, 500*msec) // labelled, current
	p.ReadLabelled("a", 1, 120*msec) // labelled, within grace
	p.Read("a", 2, 600*msec)         // fine
	p.Read("a", 1, 700*msec)         // unlabelled: a violation
	p.ReadLabelled("a", 1, 50*msec)  // before the write: not old
	p.ReadLabelled("b", 1, 900*msec) // untracked
	res := p.Analyze()
	if res.StaleReads != 1 || res.ReadsAfterWrite != 2 || res.Reads != 2 || res.MaxStalenessMs != 600 {
		t.Errorf("unlabelled figures %+v, want 1 stale read of 2 reads after the write, worst 600ms", res)
	}
	if res.LabelledReads != 4 || res.LabelledStale != 1 {
		t.Errorf("labelled %d, stale %d; want 4, 1", res.LabelledReads, res.LabelledStale)
	}
	if since := p.AnalyzeSince(450 * msec); since.LabelledStale != 0 || since.StaleReads != 1 {
		t.Errorf("since 450ms: %+v", since)
	}
}
