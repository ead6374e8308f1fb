package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: run must stop
// everything it started (server, subscriber, retry loop, pools) before it
// returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
