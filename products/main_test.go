package products

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every replica's
// cache, pool and server is closed by its test's cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis re-dials a dead server from a goroutine that sleeps a
		// second between tries and only then sees its pool closed.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
