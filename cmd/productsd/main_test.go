package main

import (
	"os"
	"testing"

	"github.com/tiercache/productcache/internal/testenv"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: run must stop
// everything it started (server, subscriber, retry loop, pools) before it
// returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The shared productsd binary of the process tests.
		goleak.Cleanup(func(code int) {
			testenv.RemoveBuilds()
			os.Exit(code)
		}),
		// go-redis re-dials a dead server from a goroutine that sleeps a
		// second between tries and only then sees its pool closed.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
