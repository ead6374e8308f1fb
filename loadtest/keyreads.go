package loadtest

import (
	"sync"
	"sync/atomic"
	"time"
)

// KeyReads records, for judging the fail-safe against a fault, when each
// key of the key space was first answered (a get or a batch item with a
// version, from any target, warmup included) and the keys of every
// opted-in (stale-if-error) get or batch read that failed. After the run
// [KeyReads.FailedOptIn] tells the failed reads whose keys had all been
// answered before the fault began, which a fail-safe copy could have
// answered, from those with a key never read before it, which no copy
// anywhere could. The zero value is not usable: pass one from
// [NewKeyReads] in [RunOptions].
type KeyReads struct {
	base  time.Time      // the origin of the times below
	first []atomic.Int64 // by rank: 1 + ns since base of the first answer's end; 0: none yet

	mu     sync.Mutex // guards failed
	failed []failedRead
}

// failedRead is a failed opted-in read: when it began and its keys' ranks.
type failedRead struct {
	begin int64 // ns since base
	ranks []int
}

// NewKeyReads returns an empty record.
func NewKeyReads() *KeyReads { return &KeyReads{base: time.Now()} }

// track sizes the record for a key space of n keys; Run calls it before
// the first request.
func (k *KeyReads) track(n int) {
	if k != nil && len(k.first) != n {
		k.first = make([]atomic.Int64, n)
	}
}

// answered records that the key of rank k was answered at t.
func (k *KeyReads) answered(rank int, t time.Time) {
	if k == nil || rank >= len(k.first) {
		return
	}
	at := 1 + int64(t.Sub(k.base))
	f := &k.first[rank]
	for old := f.Load(); old == 0 || at < old; old = f.Load() {
		if f.CompareAndSwap(old, at) {
			return
		}
	}
}

// failedRead records an opted-in read of the keys ranks, begun at begin,
// that failed.
func (k *KeyReads) failedRead(begin time.Time, ranks []int) {
	if k == nil {
		return
	}
	r := failedRead{begin: int64(begin.Sub(k.base)), ranks: append([]int(nil), ranks...)}
	k.mu.Lock()
	k.failed = append(k.failed, r)
	k.mu.Unlock()
}

// FailedOptIn counts the failed opted-in reads: readBefore, those whose
// every key had been answered, by any target, before fault; and unread,
// those with at least one key no answer had carried before it.
func (k *KeyReads) FailedOptIn(fault time.Time) (readBefore, unread int64) {
	if k == nil {
		return 0, 0
	}
	cut := 1 + int64(fault.Sub(k.base))
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.failed {
		before := true
		for _, rank := range r.ranks {
			if at := k.first[rank].Load(); at == 0 || at >= cut {
				before = false
				break
			}
		}
		if before {
			readBefore++
		} else {
			unread++
		}
	}
	return readBefore, unread
}
