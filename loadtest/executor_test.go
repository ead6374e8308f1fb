package loadtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testVU(id int) *vu { return &vu{id: id} }

func TestVUsAt(t *testing.T) {
	stages := []Stage{
		{Duration: Duration(10 * time.Second), Target: 10},
		{Duration: Duration(10 * time.Second), Target: 10},
		{Duration: Duration(5 * time.Second), Target: 0},
	}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{0, 2}, {5 * time.Second, 6}, {10 * time.Second, 10}, {15 * time.Second, 10},
		{20 * time.Second, 10}, {22500 * time.Millisecond, 5}, {25 * time.Second, 0}, {time.Hour, 0},
	}
	for _, tt := range tests {
		if got := vusAt(2, stages, tt.at); got != tt.want {
			t.Errorf("vusAt(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

func TestArrivalTimes(t *testing.T) {
	tests := []struct {
		rate     int
		unit, d  time.Duration
		interval time.Duration
		n        int64
	}{
		{100, time.Second, time.Second, 10 * time.Millisecond, 100},
		{3, time.Second, 2 * time.Second, 333333333, 7}, // 0, .33, .67, 1, 1.33, 1.67, 2.0-: ceil
		{60, time.Minute, 10 * time.Second, time.Second, 10},
	}
	for _, tt := range tests {
		interval, n := arrivalTimes(tt.rate, tt.unit, tt.d)
		if interval != tt.interval || n != tt.n {
			t.Errorf("arrivalTimes(%d, %v, %v) = %v, %d; want %v, %d", tt.rate, tt.unit, tt.d, interval, n, tt.interval, tt.n)
		}
	}
}

func TestConstantVUsBudget(t *testing.T) {
	var n atomic.Int64
	seen := sync.Map{}
	e := newExecutor(testVU, func(_ context.Context, v *vu, scheduled time.Time) {
		if !scheduled.IsZero() {
			t.Error("closed-model iteration got a schedule")
		}
		seen.Store(v.id, true)
		n.Add(1)
	}, 1000)
	e.constantVUs(t.Context(), make(chan struct{}), 5, time.Minute)
	if n.Load() != 1000 {
		t.Errorf("ran %d iterations, want exactly the budget of 1000", n.Load())
	}
	if e.active.Load() != 0 {
		t.Errorf("%d VUs still active", e.active.Load())
	}
}

func TestConstantVUsStops(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	e := newExecutor(testVU, func(context.Context, *vu, time.Time) { once.Do(func() { close(started) }) }, 0)
	done := make(chan struct{})
	go func() { e.constantVUs(t.Context(), stop, 3, time.Hour); close(done) }()
	<-started
	close(stop)
	<-done // returns without waiting for the hour
}

func TestRampingVUsFollowsStages(t *testing.T) {
	var peak atomic.Int64
	var e *executor
	e = newExecutor(testVU, func(context.Context, *vu, time.Time) {
		a := e.active.Load()
		for p := peak.Load(); a > p && !peak.CompareAndSwap(p, a); p = peak.Load() {
		}
		time.Sleep(time.Millisecond) // an iteration takes a while
	}, 0)
	stages := []Stage{{Duration: Duration(150 * time.Millisecond), Target: 6}, {Duration: Duration(100 * time.Millisecond), Target: 0}}
	e.rampingVUs(t.Context(), make(chan struct{}), 0, stages, 5*time.Millisecond)
	if p := peak.Load(); p < 4 || p > 6 {
		t.Errorf("peak of %d running VUs, want near the target of 6 and never above", p)
	}
	if e.active.Load() != 0 {
		t.Errorf("%d VUs still active after the ramp down", e.active.Load())
	}
}

func TestConstantArrivalRateSchedule(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	e := newExecutor(testVU, func(_ context.Context, _ *vu, at time.Time) {
		mu.Lock()
		times = append(times, at)
		mu.Unlock()
	}, 0)
	e.arrivalRate(t.Context(), make(chan struct{}), constantSchedule(400, time.Second, 100*time.Millisecond), 4, 50)
	if len(times) != 40 {
		t.Fatalf("ran %d iterations, want 40 (400/s for 100ms)", len(times))
	}
	first := times[0]
	for _, at := range times {
		if at.Before(first) {
			first = at
		}
	}
	// Every start is on the 2.5ms grid, whenever it actually ran.
	for _, at := range times {
		if off := at.Sub(first) % (2500 * time.Microsecond); off != 0 {
			t.Errorf("scheduled start %v is off the grid by %v", at.Sub(first), off)
		}
	}
}

func TestConstantArrivalRateDropsWhenVUsRunOut(t *testing.T) {
	release := make(chan struct{})
	drops := make(chan struct{}, 100)
	var ran atomic.Int64
	e := newExecutor(testVU, func(context.Context, *vu, time.Time) {
		ran.Add(1)
		<-release // every iteration is slower than the schedule
	}, 0)
	e.onDrop = func() { drops <- struct{}{} }
	done := make(chan struct{})
	go func() {
		e.arrivalRate(t.Context(), make(chan struct{}), constantSchedule(1000, time.Second, 20*time.Millisecond), 1, 2)
		close(done)
	}()
	for range 18 { // 20 arrivals, 2 VUs busy for all of them
		<-drops
	}
	close(release)
	<-done
	if ran.Load() != 2 || e.dropped.Load() != 18 {
		t.Errorf("ran %d, dropped %d; want 2 and 18", ran.Load(), e.dropped.Load())
	}
}

// TestRampingSchedule: the ramping-arrival-rate timeline, computed (no
// clock): a ramp from 0 to 100/s over 2s then 100/s for 1s is 100 + 100
// arrivals, spaced wider at the start of the ramp than at its end, and
// evenly (10ms) on the plateau.
func TestRampingSchedule(t *testing.T) {
	next := rampingSchedule(0, []Stage{{Duration: Duration(2 * time.Second), Target: 100}, {Duration: Duration(time.Second), Target: 100}}, time.Second)
	var offs []time.Duration
	for i := int64(0); ; i++ {
		off, ok := next(i)
		if !ok {
			break
		}
		offs = append(offs, off)
	}
	if len(offs) < 199 || len(offs) > 201 {
		t.Fatalf("got %d arrivals, want 200", len(offs))
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] < offs[i-1] {
			t.Fatalf("arrival %d at %v before arrival %d at %v", i, offs[i], i-1, offs[i-1])
		}
	}
	if early, late := offs[2]-offs[1], offs[99]-offs[98]; early <= late {
		t.Errorf("gap early in the ramp %v, late %v: want the rate to grow", early, late)
	}
	// On the plateau the count after 2s is 100: arrival 150 comes at 2.5s.
	if got := offs[150]; got < 2499*time.Millisecond || got > 2501*time.Millisecond {
		t.Errorf("arrival 150 at %v, want 2.5s", got)
	}
	// Halfway up the ramp (1s), 25 arrivals are due (the area under it).
	if got := offs[25]; got < 999*time.Millisecond || got > 1001*time.Millisecond {
		t.Errorf("arrival 25 at %v, want 1s", got)
	}
	// A constant stage is the constant schedule.
	flat := rampingSchedule(400, []Stage{{Duration: Duration(100 * time.Millisecond), Target: 400}}, time.Second)
	if off, ok := flat(10); !ok || off != 25*time.Millisecond {
		t.Errorf("flat arrival 10 at %v, want 25ms", off)
	}
}
