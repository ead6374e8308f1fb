package tiercache

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisURL is where the shared test Redis listens (DESIGN §7).
func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// needRedis returns a client of the shared Redis, failing the test with a
// clear message if it does not answer. It skips under -short.
func needRedis(t testing.TB) *redis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis; skipped with -short")
	}
	opt, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", redisURL(), err)
	}
	return dialRedis(t, opt)
}

func dialRedis(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = 200 * time.Millisecond
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("Redis at %s is not answering (set REDIS_URL, or use -short): %v", opt.Addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

var nsCounter atomic.Int64

// namespace returns a Namespace no other test uses, and removes its keys
// when the test ends.
func namespace(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	ns := fmt.Sprintf("tctest:%d:%d:%d", os.Getpid(), time.Now().UnixNano(), nsCounter.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return ns
}

// source is a versioned source of truth that counts its reads.
type source struct {
	mu    sync.Mutex
	vals  map[string]int // guarded by mu; 0 means "not found"
	loads atomic.Int64
}

func newSource() *source { return &source{vals: make(map[string]int)} }

func (s *source) set(key string, v int) {
	s.mu.Lock()
	s.vals[key] = v
	s.mu.Unlock()
}

func (s *source) get(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals[key]
}

// loader returns a LoadFunc reading key from s.
func (s *source) loader(key string) LoadFunc[int] {
	return func(ctx context.Context) (int, error) {
		s.loads.Add(1)
		v := s.get(key)
		if v == 0 {
			return 0, ErrNotFound
		}
		return v, nil
	}
}

// newCache builds a cache and closes it at the end of the test.
func newCache(t testing.TB, rdb redis.UniversalClient, opt Options) *Cache[int] {
	t.Helper()
	c, err := New[int](rdb, nil, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitReady waits until c has a confirmed subscription.
func waitReady(t testing.TB, caches ...*Cache[int]) {
	t.Helper()
	eventually(t, 5*time.Second, "subscription confirmed", func() bool {
		for _, c := range caches {
			if !c.Ready() {
				return false
			}
		}
		return true
	})
}

// eventually polls cond until it holds or the deadline passes. It is for
// effects that cross processes or connections (pub/sub delivery), which no
// handshake inside the test can observe directly.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(within, cond) {
		t.Fatalf("timed out after %v waiting for: %s", within, what)
	}
}

// poll is eventually for goroutines other than the test's: it reports
// instead of failing.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func mustGet(t testing.TB, c *Cache[int], key string, s *source) (int, Info) {
	t.Helper()
	v, info, err := c.GetInfo(context.Background(), key, s.loader(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, info
}

// redisServer is a redis-server process of the test's own, on a free port,
// so the test can kill and restart it.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &redisServer{t: t, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	eventually(s.t, 5*time.Second, "redis-server answering on "+s.addr(), func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), 50*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func (s *redisServer) client(t testing.TB) *redis.Client {
	return dialRedis(t, &redis.Options{Addr: s.addr()})
}

// fastOptions are options for fault tests: quick detection and retries.
func fastOptions(ns string) Options {
	return Options{
		Namespace: ns, PingInterval: 100 * time.Millisecond, ReconnectBackoff: 50 * time.Millisecond,
		RetryInterval: 20 * time.Millisecond, BreakerCooldown: 50 * time.Millisecond, L2Timeout: 200 * time.Millisecond,
	}
}
