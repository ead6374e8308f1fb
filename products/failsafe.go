package products

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tiercache/productcache/tiercache"
)

// statusFailSafe is the Cache-Status name of the fail-safe store
// (docs/design.md §3.16, §4).
const statusFailSafe = "productsd-failsafe"

// maxDeltaSeconds is the largest delta-seconds a recipient keeps; larger
// values count as this one (RFC 9111 §1.2.2).
const maxDeltaSeconds = 2147483648

// SetFailSafe sets the server's fail-safe defaults (docs/design.md §3.16):
// staleIfError is the allowance of a product read whose request carries no
// valid stale-if-error directive (zero: such reads never get a stale value),
// softTimeout the load time after which an opted-in read answers with its
// stale copy while the load goes on (zero: off).
func (s *Service) SetFailSafe(staleIfError, softTimeout time.Duration) {
	s.staleIfError.Store(int64(max(staleIfError, 0)))
	s.softTimeout.Store(int64(max(softTimeout, 0)))
}

// staleAllowance is how stale a value the request r accepts should the
// database fail: its Cache-Control stale-if-error if valid, else the
// server default.
func (s *Service) staleAllowance(r *http.Request) time.Duration {
	if d, ok := staleIfError(r.Header["Cache-Control"]); ok {
		return d
	}
	return time.Duration(s.staleIfError.Load())
}

// failSafeOptions are the cache options of a read that accepts a value
// stale by up to allow; none when allow is zero.
func (s *Service) failSafeOptions(allow time.Duration) []tiercache.GetOption {
	if allow <= 0 || s.cache == nil {
		return nil
	}
	opts := []tiercache.GetOption{tiercache.StaleIfError(allow)}
	if soft := time.Duration(s.softTimeout.Load()); soft > 0 {
		opts = append(opts, tiercache.SoftTimeout(soft))
	}
	return opts
}

// staleIfError finds the stale-if-error directive (RFC 5861 §4) in the
// Cache-Control field lines: directive names are case-insensitive, the
// value a token or quoted-string of delta-seconds (RFC 9111 §5.2), other
// directives are skipped. A directive without a valid value, or given
// twice, is ignored (RFC 9111 §4.2.1): ok is false.
func staleIfError(lines []string) (d time.Duration, ok bool) {
	seen := 0
	for _, line := range lines {
		for _, dir := range splitDirectives(line) {
			name, val, _ := strings.Cut(dir, "=")
			if !strings.EqualFold(strings.TrimSpace(name), "stale-if-error") {
				continue
			}
			seen++
			val = strings.TrimSpace(val)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			secs, valid := deltaSeconds(val)
			d, ok = time.Duration(secs)*time.Second, valid
		}
	}
	if seen != 1 {
		return 0, false
	}
	return d, ok
}

// splitDirectives splits one Cache-Control line at the commas outside
// quoted strings.
func splitDirectives(line string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, line[start:i])
				start = i + 1
			}
		}
	}
	return append(out, line[start:])
}

// deltaSeconds parses 1*DIGIT, capped at maxDeltaSeconds.
func deltaSeconds(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return maxDeltaSeconds, true // only overflow is left: all digits
	}
	return n, true
}

// ageSeconds is a stale answer's age in whole seconds, rounded up so it
// never understates it.
func ageSeconds(age time.Duration) int64 {
	return int64((age + time.Second - 1) / time.Second)
}

// failSafeStatus is the Cache-Status of an answer from the fail-safe
// store: a hit whose ttl is minus its age (stale since it was read from the
// database, as far as this replica can know), and a detail naming why the
// database was not used: "db-error" or "db-timeout" (docs/design.md §4).
func failSafeStatus(info tiercache.Info) string {
	return statusFailSafe + "; hit; ttl=-" + strconv.FormatInt(ageSeconds(info.Age), 10) + `; detail="` + staleDetail(info.StaleReason) + `"`
}

// staleDetail names why the database was not used: "db-error" or
// "db-timeout".
func staleDetail(reason string) string {
	if reason == tiercache.StaleTimeout {
		return "db-timeout"
	}
	return "db-error"
}
