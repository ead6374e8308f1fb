package tiercache

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
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
