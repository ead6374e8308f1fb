// Package ratelog writes warnings of a kind at most once per interval,
// saying how many of that kind it held back since: during an outage every
// write and every reconnect attempt fails, and a log line for each would
// bury the one that says what happened.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Limiter rate-limits warnings per kind. The zero value is not usable; use
// [New].
type Limiter struct {
	out   *slog.Logger
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*kind // guarded by mu
}

type kind struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter writing to out at most one warning of each kind per
// interval every.
func New(out *slog.Logger, every time.Duration) *Limiter {
	return &Limiter{out: out, every: every, now: time.Now, kinds: make(map[string]*kind)}
}

// Warn writes msg with args at warning level, unless a warning of the same
// kind was written within the interval; the next one written says how many
// were held back ("suppressed").
func (l *Limiter) Warn(kindName, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	k := l.kinds[kindName]
	if k == nil {
		k = &kind{}
		l.kinds[kindName] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.every {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	l.out.Warn(msg, args...)
}
