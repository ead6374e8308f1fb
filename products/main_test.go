package products

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every replica's
// cache, pool and server is closed by its test's cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
