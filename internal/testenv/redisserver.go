package testenv

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RedisServer is a redis-server process of the test's own on a free port,
// so the test can start it late, kill it and start it again.
type RedisServer struct {
	// Args are extra redis-server arguments, such as "--requirepass", "x";
	// set them before Start.
	Args []string

	t    testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// NewRedisServer reserves a free port for a redis-server, which it does
// not start: call Start. The server is killed when t ends.
func NewRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	SkipShort(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testenv: redis-server is not installed (apt-get install redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &RedisServer{t: t, port: port}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is a REDIS_URL for the server.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Start runs redis-server and waits until it accepts connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""}, s.Args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("testenv: start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testenv: redis-server not answering on %s", s.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server if it runs.
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
