package tiercache

import (
	"log/slog"
	"sync"
	"time"
)

// rateLimitedLog writes a warning of each kind at most once per interval,
// saying how many of that kind it held back since: during an outage every
// write and every reconnect attempt fails, and a log line for each would
// bury the one that says what happened.
type rateLimitedLog struct {
	out   *slog.Logger
	every time.Duration
	mu    sync.Mutex
	kinds map[string]*logKind // guarded by mu
}

type logKind struct {
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) init(out *slog.Logger, every time.Duration) {
	r.out, r.every, r.kinds = out, every, make(map[string]*logKind)
}

// log writes msg at warning level unless a message of kind was written
// within the interval.
func (r *rateLimitedLog) log(kind, msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	k := r.kinds[kind]
	if k == nil {
		k = &logKind{}
		r.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.out.Warn(msg, args...)
}
