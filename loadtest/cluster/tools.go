package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"syscall"
)

// Seed runs `bin seed -n n` against databaseURL (passed as DATABASE_URL),
// with env (KEY=value) added to its environment: CACHE_NAMESPACE and
// REDIS_URL say whose cached list pages the seed invalidates. Its output
// goes to out (nil discards it, except in the error).
func Seed(ctx context.Context, bin, databaseURL string, n int, out io.Writer, env ...string) error {
	return runTool(ctx, bin, databaseURL, out, env, "seed", "-n", strconv.Itoa(n))
}

// Migrate runs `bin migrate` against databaseURL.
func Migrate(ctx context.Context, bin, databaseURL string, out io.Writer) error {
	return runTool(ctx, bin, databaseURL, out, nil, "migrate")
}

func runTool(ctx context.Context, bin, databaseURL string, out io.Writer, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopDelay
	cmd.Env = cmd.Environ()
	if databaseURL != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+databaseURL)
	}
	cmd.Env = append(cmd.Env, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if out != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&buf, out), io.MultiWriter(&buf, out)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster: %s %v: %w: %.2000s", bin, args, err, buf.String())
	}
	return nil
}
