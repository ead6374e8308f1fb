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
}

func (b *breaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	now := time.Now().UnixNano()
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
		if b.openUntil.Swap(time.Now().UnixNano()+b.cooldown) == 0 {
			b.opens.Add(1)
		}
	}
}

func (b *breaker) open() bool {
	u := b.openUntil.Load()
	return u != 0 && time.Now().UnixNano() < u
}
