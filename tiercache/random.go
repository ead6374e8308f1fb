package tiercache

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"strconv"
	"time"
)

// randomToken returns 32 hex characters of crypto randomness: lease tokens
// must not collide across replicas.
func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// jitter shortens d by a random fraction of up to Options.Jitter.
func (c *Cache[V]) jitter(d time.Duration) time.Duration {
	if c.opt.Jitter <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(mrand.Float64()*c.opt.Jitter*float64(d))
}

// Group counters are seeded in [seedBase, 2*seedBase): Redis scripts count
// in doubles, exact below 2^53, which leaves 2^52 bumps above any seed, and
// two seeds (or a seed and the generations counted up from an earlier one)
// meet with a chance of about one in 2^51 per bump.
const seedBase = 1 << 51

// seed returns a fresh random start for a group counter that Redis does not
// have (docs/design.md §3.10).
func (l *l2) seed() string {
	if l.opt.hooks.genSeed != nil {
		return strconv.FormatUint(l.opt.hooks.genSeed(), 10)
	}
	return strconv.FormatUint(seedBase+mrand.Uint64N(seedBase), 10)
}
