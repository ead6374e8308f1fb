package cluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// script prints a listening line and runs until signalled; on SIGTERM it
// says so and exits.
const script = `trap 'echo got-term; exit 0' TERM
echo "fake listening on http://127.0.0.1:9 (test)"
while :; do sleep 0.05; done`

// TestStartServerReadsAddress: the address is read from the child's
// output; Stop sends SIGTERM (the child sees it), Kill does not.
func TestStartServerReadsAddress(t *testing.T) {
	p, url, err := StartServer(t.Context(), "sh", []string{"-c", script}, nil, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if url != "http://127.0.0.1:9" {
		t.Fatalf("got %q, want the printed address", url)
	}
	p.Stop()
	if !strings.Contains(p.Output(), "got-term") {
		t.Fatalf("Stop did not send SIGTERM; output %q", p.Output())
	}
	p.Stop() // a second Stop returns at once

	p, _, err = StartServer(t.Context(), "sh", []string{"-c", script}, nil, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if strings.Contains(p.Output(), "got-term") || p.Err() == nil {
		t.Fatalf("Kill: output %q, exit %v; want no SIGTERM handler run and a signal exit", p.Output(), p.Err())
	}
}

// TestStartServerExitsEarly: a child that exits without printing an
// address is an error carrying its output.
func TestStartServerExitsEarly(t *testing.T) {
	_, _, err := StartServer(t.Context(), "sh", []string{"-c", "echo no address here; exit 3"}, nil, nil, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no address here") {
		t.Fatalf("got %v, want an error with the child's output", err)
	}
}

// TestCancelStopsChild: cancelling the context a child was started with
// sends it SIGTERM.
func TestCancelStopsChild(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p, _, err := StartServer(ctx, "sh", []string{"-c", script}, nil, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-p.Exited():
	case <-time.After(StopDelay + 5*time.Second):
		t.Fatal("the child outlived its context")
	}
	if !strings.Contains(p.Output(), "got-term") {
		t.Fatalf("cancel did not send SIGTERM; output %q", p.Output())
	}
}
