package main

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// outcome is one request of a steady stream: when it started and what it
// got (a status code, or 0 with err).
type outcome struct {
	at   time.Time
	code int
	err  error
}

// requestStream GETs a URL over and over from two goroutines, each on a
// fresh connection per request (as new clients behind a load balancer
// arrive), and records every outcome.
type requestStream struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	out  []outcome // guarded by mu
}

func startStream(url string) *requestStream {
	s := &requestStream{stop: make(chan struct{})}
	for range 2 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-s.stop:
					return
				default:
				}
				o := outcome{at: time.Now()}
				resp, err := c.Get(url)
				if err != nil {
					o.err = err
				} else {
					o.code = resp.StatusCode
					resp.Body.Close()
				}
				s.mu.Lock()
				s.out = append(s.out, o)
				s.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return s
}

// snapshot returns the outcomes so far.
func (s *requestStream) snapshot() []outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]outcome(nil), s.out...)
}

// finish stops the stream and returns every outcome.
func (s *requestStream) finish() []outcome {
	close(s.stop)
	s.wg.Wait()
	return s.snapshot()
}

// TestDrainOnSIGTERM: after SIGTERM /readyz answers 503 at once (and
// `productsd healthcheck` fails), while every other request sent during
// SHUTDOWN_DELAY is still answered 200 (no refused connection, no 503);
// then the process shuts down and exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	bin := buildBinary(t)
	_, dbURL := testenv.Schema(t)
	const delay = 2 * time.Second
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(),
		"SHUTDOWN_DELAY": delay.String(), "SHUTDOWN_TIMEOUT": "5s"}
	p := startProcess(t, bin, "drain", env)
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return get(t, p.url+"/readyz").StatusCode == http.StatusOK })
	id := post(t, p.url, `{"name":"drain","price_cents":1}`)
	healthcheck := func() error {
		return exec.Command(bin, "healthcheck", "-addr", strings.TrimPrefix(p.url, "http://")).Run()
	}
	if err := healthcheck(); err != nil {
		t.Fatalf("productsd healthcheck on a ready replica: %v", err)
	}

	rs := startStream(p.url + "/products/" + id)
	waitFor(t, 5*time.Second, "traffic before the signal", func() bool { return len(rs.snapshot()) >= 20 })
	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, delay/2, "/readyz 503 after SIGTERM", func() bool {
		return get(t, p.url+"/readyz").StatusCode == http.StatusServiceUnavailable
	})
	if err := healthcheck(); err == nil {
		t.Error("productsd healthcheck passes on a draining replica")
	}
	var exitErr error
	select {
	case exitErr = <-p.done:
	case <-time.After(delay + 10*time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	exitAt := time.Now()
	out := rs.finish()

	if exitErr != nil {
		t.Fatalf("exit: %v\n%s", exitErr, p.stderr.String())
	}
	if got := exitAt.Sub(sigAt); got < delay {
		t.Fatalf("exited %v after SIGTERM, want at least SHUTDOWN_DELAY %v", got, delay)
	}
	var during, late int
	for _, o := range out {
		// The server stops accepting SHUTDOWN_DELAY after it got the signal;
		// a request begun just before (on a loaded machine, a while before)
		// may race the close.
		if o.at.After(sigAt.Add(delay - 300*time.Millisecond)) {
			continue
		}
		if o.err != nil || o.code != http.StatusOK {
			t.Errorf("request at %v after SIGTERM: got %d %v, want 200", o.at.Sub(sigAt), o.code, o.err)
		}
		if o.at.After(sigAt) {
			during++
		}
		if o.at.After(sigAt.Add(delay / 2)) {
			late++
		}
	}
	if during == 0 || late == 0 {
		t.Fatalf("%d requests after SIGTERM, %d in the second half of the delay: the stream stalled", during, late)
	}
}

// TestStartupAnswersNormally: requests sent to a replica's port from the
// moment it starts are refused until it binds (nothing listens yet), and
// from the first answer on every answer is a 200: no 503 while its first
// database check and migration run.
func TestStartupAnswersNormally(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	bin := buildBinary(t)
	_, dbURL := testenv.Schema(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	rs := startStream("http://" + addr + "/products?limit=5")
	cmd := exec.Command(bin, "serve", "-addr", addr)
	cmd.Env = append(cmd.Environ(), "DATABASE_URL="+dbURL, "CACHE_NAMESPACE="+testenv.Namespace(t), "REDIS_URL="+testenv.RedisURL())
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 20*time.Second, "ten 200s", func() bool {
		n := 0
		for _, o := range rs.snapshot() {
			if o.code == http.StatusOK {
				n++
			}
		}
		return n >= 10
	})
	out := rs.finish()
	answered := false
	for _, o := range out {
		switch {
		case o.err != nil && !answered && isRefused(o.err):
			// not bound yet
		case o.code == http.StatusOK:
			answered = true
		default:
			t.Fatalf("request %v after start: got %d %v, want 200 (or refused before the first answer)\n%s", o.at, o.code, o.err, stderr.String())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
