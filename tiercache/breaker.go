package tiercache

import (
	"errors"
	"sync/atomic"
	"time"
)

// errBreakerOpen is returned for L2 calls skipped by an open breaker.
var errBreakerOpen = errors.New("tiercache: redis circuit breaker open")

// breaker is a consecutive-failure circuit breaker: after threshold failures
// in a row it rejects calls for cooldown, then lets one probe through; the
// probe's success closes it, its failure opens it for another cooldown.
// A zero threshold disables it.
type breaker struct {
	threshold int64
	cooldown  int64 // nanoseconds
	failures  atomic.Int64
	openUntil atomic.Int64 // unix nanoseconds; 0 when closed
	opens     *atomic.Uint64
	now       func() int64 // unix nanoseconds; nil is the wall clock (tests set a fake one)
}

func (b *breaker) clock() int64 {
	if b.now != nil {
		return b.now()
	}
	return time.Now().UnixNano()
}

func (b *breaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	now := b.clock()
	if now < until {
		return false
	}
	// Half open: the first caller to move the deadline is the probe.
	return b.openUntil.CompareAndSwap(until, now+b.cooldown)
}

func (b *breaker) record(err error) {
	if err == nil {
		b.failures.Store(0)
		b.openUntil.Store(0)
		return
	}
	if b.threshold > 0 && b.failures.Add(1) >= b.threshold {
		if b.openUntil.Swap(b.clock()+b.cooldown) == 0 {
			b.opens.Add(1)
		}
	}
}

func (b *breaker) open() bool {
	u := b.openUntil.Load()
	return u != 0 && b.clock() < u
}
