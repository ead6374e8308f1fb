package loadtest

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// iteration runs one iteration on a VU. scheduled is the planned start for
// the arrival-rate executor (latency counts from it) and zero otherwise.
type iteration func(ctx context.Context, v *vu, scheduled time.Time)

// executor drives iterations. It stops starting new ones when stop closes,
// the duration ends or the iteration budget is spent; iterations in flight
// finish (their requests still have a timeout).
type executor struct {
	newVU   func(id int) *vu
	iter    iteration
	active  atomic.Int64 // running VUs
	budget  atomic.Int64 // iterations left; < 0 means unlimited
	onDrop  func()       // an arrival found no free VU; may be nil
	dropped atomic.Int64
}

func newExecutor(newVU func(int) *vu, iter iteration, maxIters int64) *executor {
	e := &executor{newVU: newVU, iter: iter}
	if maxIters > 0 {
		e.budget.Store(maxIters)
	} else {
		e.budget.Store(-1)
	}
	return e
}

// take claims one iteration from the budget.
func (e *executor) take() bool {
	for {
		b := e.budget.Load()
		if b < 0 {
			return true
		}
		if b == 0 {
			return false
		}
		if e.budget.CompareAndSwap(b, b-1) {
			return true
		}
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// loop runs iterations back to back until stop or vstop closes.
func (e *executor) loop(ctx context.Context, v *vu, stop, vstop <-chan struct{}) {
	e.active.Add(1)
	defer e.active.Add(-1)
	for !closed(stop) && !closed(vstop) && e.take() {
		e.iter(ctx, v, time.Time{})
	}
}

// untilDone returns a channel closed when stop closes or d has passed.
func untilDone(stop <-chan struct{}, d time.Duration) (<-chan struct{}, func()) {
	done := make(chan struct{})
	t := time.NewTimer(d)
	var once sync.Once
	finish := func() { once.Do(func() { close(done) }) }
	go func() {
		select {
		case <-t.C:
		case <-stop:
		case <-done:
		}
		t.Stop()
		finish()
	}()
	return done, finish
}

// constantVUs runs n VUs for d.
func (e *executor) constantVUs(ctx context.Context, stop <-chan struct{}, n int, d time.Duration) {
	done, finish := untilDone(stop, d)
	defer finish()
	var wg sync.WaitGroup
	for i := range n {
		v := e.newVU(i)
		wg.Go(func() { e.loop(ctx, v, done, nil) })
	}
	wg.Wait()
}

// vusAt is the number of VUs a ramping-vus scenario wants at elapsed t:
// linear within each stage, from the previous stage's target (or start).
func vusAt(start int, stages []Stage, t time.Duration) int {
	from := start
	for _, st := range stages {
		d := time.Duration(st.Duration)
		if t < d {
			frac := float64(t) / float64(d)
			return int(math.Round(float64(from) + frac*float64(st.Target-from)))
		}
		t -= d
		from = st.Target
	}
	return from
}

// rampingVUs starts and stops VUs to follow the stages, checking every
// step. A VU that is told to stop finishes its current iteration.
func (e *executor) rampingVUs(ctx context.Context, stop <-chan struct{}, start int, stages []Stage, step time.Duration) {
	var total time.Duration
	for _, st := range stages {
		total += time.Duration(st.Duration)
	}
	done, finish := untilDone(stop, total)
	defer finish()
	var wg sync.WaitGroup
	var vstops []chan struct{}
	adjust := func(want int) {
		for len(vstops) < want {
			vs := make(chan struct{})
			v := e.newVU(len(vstops))
			vstops = append(vstops, vs)
			wg.Go(func() { e.loop(ctx, v, done, vs) })
		}
		for len(vstops) > want {
			close(vstops[len(vstops)-1])
			vstops = vstops[:len(vstops)-1]
		}
	}
	t0 := time.Now()
	tick := time.NewTicker(step)
	defer tick.Stop()
	for adjust(vusAt(start, stages, 0)); ; {
		select {
		case <-done:
			wg.Wait()
			return
		case now := <-tick.C:
			adjust(vusAt(start, stages, now.Sub(t0)))
		}
	}
}

// schedule gives the offset of arrival i from the start of an
// arrival-rate executor, and false when there is none (the run is over).
type schedule func(i int64) (time.Duration, bool)

// arrivalTimes is the schedule of the constant-arrival-rate executor: one
// iteration every unit/rate, starting at offset 0, for d.
func arrivalTimes(rate int, unit, d time.Duration) (interval time.Duration, n int64) {
	interval = unit / time.Duration(rate)
	if interval <= 0 {
		interval = 1
	}
	return interval, int64((d + interval - 1) / interval)
}

func constantSchedule(rate int, unit, d time.Duration) schedule {
	interval, n := arrivalTimes(rate, unit, d)
	return func(i int64) (time.Duration, bool) { return time.Duration(i) * interval, i < n }
}

// rampingSchedule is the schedule of the ramping-arrival-rate executor:
// the rate (iterations per unit) moves linearly from start through each
// stage's target, as k6's does, and arrival i comes when the iterations
// due since the start reach i. Within a stage of length D going from rate
// a to b, the count after t is (a*t + (b-a)*t²/(2D)) / unit, which is
// solved for t.
func rampingSchedule(start int, stages []Stage, unit time.Duration) schedule {
	u := unit.Seconds()
	return func(i int64) (time.Duration, bool) {
		c := float64(i) // iterations still to count
		var offset float64
		a := float64(start)
		for _, st := range stages {
			d, b := time.Duration(st.Duration).Seconds(), float64(st.Target)
			inStage := (a + b) / 2 * d / u
			if c <= inStage && d > 0 {
				var t float64
				if k := (b - a) / (2 * d); math.Abs(k) < 1e-12 {
					t = c * u / a
				} else {
					t = (-a + math.Sqrt(a*a+4*k*c*u)) / (2 * k)
				}
				return time.Duration((offset + t) * float64(time.Second)), true
			}
			c -= inStage
			offset += d
			a = b
		}
		return 0, false
	}
}

// arrivalRate starts iterations on the timeline next gives (constant or
// ramping), independent of how long they take: the open model. An arrival takes an idle VU, or
// allocates a new one up to maxVUs, or is dropped. Iterations run late when
// the generator falls behind; their latency still counts from the schedule.
// A VU is idle from its allocation until it is handed an arrival, and again
// once its iteration returns; active counts allocated VUs.
func (e *executor) arrivalRate(ctx context.Context, stop <-chan struct{}, next schedule, pre, maxVUs int) {
	idle := make(chan *vu, maxVUs)
	allocated := 0
	alloc := func() *vu {
		v := e.newVU(allocated)
		allocated++
		e.active.Add(1)
		return v
	}
	for range pre {
		idle <- alloc()
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for i := int64(0); e.take(); i++ {
		off, ok := next(i)
		if !ok {
			break
		}
		at := t0.Add(off)
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stop:
				break schedule
			case <-timer.C:
			}
		} else if closed(stop) {
			break
		}
		var v *vu
		select {
		case v = <-idle:
		default:
			if allocated >= maxVUs {
				e.dropped.Add(1)
				if e.onDrop != nil {
					e.onDrop()
				}
				continue
			}
			v = alloc()
		}
		wg.Go(func() {
			e.iter(ctx, v, at)
			idle <- v
		})
	}
	wg.Wait()
	e.active.Add(-int64(allocated))
}
