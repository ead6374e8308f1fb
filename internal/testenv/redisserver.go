package testenv

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RedisServer is a redis-server process of the test's own on a free port,
// so the test can start it late, kill it and start it again.
type RedisServer struct {
	// Args are more redis-server arguments, such as "--requirepass", "x",
	// set them before Start.
	Args []string

	t    testing.TB
	port int
	conf string   // a config file, first on the command line (sentinel)
	dir  string   // the working directory of a server without conf
	args []string // extra redis-server arguments
	tls  bool     // serve TLS only, on port
	cmd  *exec.Cmd
	done chan struct{}
}

// NewRedisServer reserves a free port for a redis-server, which it does
// not start: call Start. args are added to its command line (for example
// "--cluster-enabled", "yes"). The server is killed when t ends.
func NewRedisServer(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	SkipShort(t)
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("testenv: %s is not installed (apt-get install redis-server redis-tools): %v", tool, err)
		}
	}
	s := &RedisServer{t: t, port: FreePort(t), args: args, dir: tempDir(t)}
	t.Cleanup(s.Stop)
	return s
}

// NewTLSRedisServer is NewRedisServer for a server that speaks TLS only,
// with the certificate and key of files (see NewTLSFiles); clients need not
// present certificates.
func NewTLSRedisServer(t testing.TB, files TLSFiles, args ...string) *RedisServer {
	t.Helper()
	s := NewRedisServer(t, append([]string{"--tls-cert-file", files.Cert, "--tls-key-file", files.Key,
		"--tls-ca-cert-file", files.CA, "--tls-auth-clients", "no"}, args...)...)
	s.tls = true
	return s
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's port.
func (s *RedisServer) Port() int { return s.port }

// URL is a REDIS_URL for the server (rediss:// for a TLS server).
func (s *RedisServer) URL() string {
	if s.tls {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// Start runs redis-server and waits until it accepts connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args = append(args, port...)
	args = append(args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	if s.dir != "" {
		args = append(args, "--dir", s.dir) // a replica's full-sync RDB, never in the test's directory
	}
	args = append(append(args, s.args...), s.Args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("testenv: start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	Eventually(s.t, 5*time.Second, "redis-server answering on "+s.Addr(), func() bool {
		c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
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

// Eventually polls cond until it holds, failing t if d passes first: the
// one way tests here wait for an effect in another process.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Poll is Eventually for goroutines other than the test's: it reports
// whether cond held before d passed instead of failing the test.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// tempDir is a new directory removed when t ends, after the servers
// started later (cleanups run last-in first-out) are gone; t.TempDir would
// fail on files a server is still writing.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testenv-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
