// Command loadtest is a k6-style load generator for the products API.
//
//	loadtest run [flags] [scenario]      run a scenario (default: the built-in one)
//	                                     against -targets
//	loadtest demo [flags] [scenario]     start -replicas productsd replicas on free
//	                                     ports, seed, run, stop
//	loadtest compare [flags] [scenario]  one scenario against CACHE_MODE none, redis,
//	                                     local, tiered and a static handler; print a table
//	loadtest chaos [flags]               3 replicas on a private Redis and database;
//	                                     the default scenario once per fault phase
//	                                     (Redis killed, stalled, pub/sub cut...), with
//	                                     each phase's bound checked; print a table
//	loadtest static [flags]              serve fixed product bytes (the ceiling)
//	loadtest help                        list the commands
//
// A scenario is a YAML or JSON file. demo and compare start their own
// replicas and refuse -targets, and compare refuses the flags it would
// ignore (-quiet; -redis-url with its private redis-server).
//
// Exit status: 0 when every threshold passed, 99 when one failed, 2 for a
// usage error, 1 for any other error. Run `loadtest <command> -h` for flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tiercache/productcache/loadtest"
)

// exitThresholds is the exit status when a threshold fails, as in k6.
const exitThresholds = 99

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, loadtest.ErrThresholds):
		fmt.Fprintln(stderr, "loadtest:", err)
		return exitThresholds
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	fmt.Fprintln(stderr, "loadtest:", err)
	return 1
}

const usage = `usage: loadtest <command> [flags]

commands:
  run [flags] [scenario.yaml|json]  run a scenario (default: the built-in one) against -targets
  demo [flags]                      start productsd replicas on free ports, seed, run, stop
  compare [flags]                   the same scenario against CACHE_MODE none, redis, local,
                                    tiered and a static handler, as a table
  chaos [flags]                     3 replicas on a private Redis and database, one fault per
                                    phase, a table of figures; 99 when a bound is broken
  static [flags]                    serve fixed product bytes on -addr (the ceiling)

Exit status: 0 thresholds passed, 99 a threshold failed, 2 usage, 1 other errors.
`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return usagef("no command")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest, getenv, stdout, stderr)
	case "demo":
		return demoCmd(ctx, rest, getenv, stdout, stderr)
	case "compare":
		return compareCmd(ctx, rest, getenv, stdout, stderr)
	case "chaos":
		return chaosCmd(ctx, rest, getenv, stdout, stderr)
	case "static":
		return staticCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}
