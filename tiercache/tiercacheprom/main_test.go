package tiercacheprom

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a cache
// or Redis client not closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
