package tiercache

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestBreakerHalfOpen walks the breaker through its states on a fake clock:
// closed, open after threshold failures in a row, half open after the
// cooldown with exactly one probe let through, open again when the probe
// fails (without counting a second opening), closed when a probe succeeds.
func TestBreakerHalfOpen(t *testing.T) {
	var now atomic.Int64
	now.Store(1_000_000_000)
	var opens atomic.Uint64
	b := &breaker{threshold: 2, cooldown: int64(time.Second), opens: &opens, now: now.Load}
	fail := errors.New("redis down")
	advance := func(d time.Duration) { now.Add(int64(d)) }

	b.record(fail)
	if !b.allow() || b.open() {
		t.Fatal("one failure below the threshold opened the breaker")
	}
	b.record(fail)
	if b.allow() || !b.open() || opens.Load() != 1 {
		t.Fatalf("threshold reached: allow %v open %v opens %d, want false true 1", b.allow(), b.open(), opens.Load())
	}
	advance(999 * time.Millisecond)
	if b.allow() {
		t.Fatal("a call went through before the cooldown ended")
	}
	advance(time.Millisecond)
	if !b.allow() {
		t.Fatal("half open: the first call after the cooldown was not let through as the probe")
	}
	if b.allow() {
		t.Fatal("half open: a second call went through while the probe was out")
	}
	b.record(fail) // the probe fails
	if b.allow() || !b.open() {
		t.Fatal("a failed probe did not reopen the breaker")
	}
	if opens.Load() != 1 {
		t.Fatalf("a failed probe counted as a new opening: opens %d, want 1", opens.Load())
	}
	advance(time.Second)
	if !b.allow() {
		t.Fatal("no probe after the second cooldown")
	}
	b.record(nil) // the probe succeeds
	if !b.allow() || !b.allow() || b.open() {
		t.Fatal("a successful probe did not close the breaker")
	}
	b.record(fail)
	if !b.allow() {
		t.Fatal("after closing, a single failure opened the breaker: the failure count was not reset")
	}
}
