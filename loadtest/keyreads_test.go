package loadtest

import (
	"testing"
	"time"
)

// TestKeyReadsFailedOptIn: a failed read counts as read before the fault
// only when every key it asked was answered before the fault began; the
// earliest answer of a key counts, whatever the order they are recorded
// in.
func TestKeyReadsFailedOptIn(t *testing.T) {
	k := NewKeyReads()
	k.track(4)
	t0 := k.base
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	k.answered(0, at(5))
	k.answered(0, at(1)) // the earlier answer, recorded later
	k.answered(1, at(2))
	k.answered(2, at(20)) // after the fault
	// key 3 never answered
	k.failedRead(at(11), []int{0})
	k.failedRead(at(12), []int{0, 1})
	k.failedRead(at(13), []int{0, 2})
	k.failedRead(at(14), []int{3})
	k.failedRead(at(15), []int{1, 3})
	for _, tt := range []struct {
		fault          time.Time
		before, unread int64
	}{
		{at(10), 2, 3},
		{at(3), 2, 3},
		{at(2), 1, 4}, // key 1 answered at the fault's start: not before it
		{at(30), 3, 2},
		{at(0), 0, 5},
	} {
		if before, unread := k.FailedOptIn(tt.fault); before != tt.before || unread != tt.unread {
			t.Errorf("fault at %v: %d read before, %d unread; want %d, %d", tt.fault.Sub(t0), before, unread, tt.before, tt.unread)
		}
	}
	var none *KeyReads
	none.answered(0, at(1))
	none.failedRead(at(1), []int{0})
	if b, u := none.FailedOptIn(at(2)); b != 0 || u != 0 {
		t.Errorf("nil record: %d, %d; want 0, 0", b, u)
	}
}
