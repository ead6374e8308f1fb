package tiercache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// needRedis returns a client of the shared Redis (REDIS_URL), failing the
// test with a clear message if it does not answer; skipped with -short.
func needRedis(t testing.TB) *redis.Client {
	t.Helper()
	return testenv.Redis(t)
}

// dialRedis connects to a test's own redis-server with fail-fast settings,
// so fault tests see a dead server in milliseconds.
func dialRedis(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = 200 * time.Millisecond
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 500 * time.Millisecond
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = 500 * time.Millisecond
	}
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	// The first answer may be slow on a busy machine: fail-fast settings
	// are for the test's faults, not for its start.
	if err := pingUntil(rdb, 10*time.Second); err != nil {
		_ = rdb.Close()
		t.Fatalf("Redis at %s is not answering: %v", opt.Addr, err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// pingUntil pings rdb until it answers or within has passed.
func pingUntil(rdb *redis.Client, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// namespace returns a Namespace no other test uses, and removes its keys
// when the test ends.
func namespace(t testing.TB, _ *redis.Client) string {
	t.Helper()
	return testenv.Namespace(t)
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

// newCache builds a cache and closes it at the end of the test. Unless opt
// says otherwise it has a StalenessBound and an L2Timeout of a second:
// tests that assert L1 and L2 hits without being about the freshness lease
// or timeouts must not fail because a loaded machine held the subscriber
// for 25ms or Redis for 100ms (the lease's and the faults' own tests set
// them, or drive a fake clock).
func newCache(t testing.TB, rdb redis.UniversalClient, opt Options) *Cache[int] {
	t.Helper()
	if opt.StalenessBound == 0 {
		opt.StalenessBound = time.Second
	}
	if opt.L2Timeout == 0 {
		opt.L2Timeout = time.Second // likewise: the shared Redis of a busy machine
	}
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
	testenv.Eventually(t, within, what, cond)
}

// poll is eventually for goroutines other than the test's: it reports
// instead of failing.
func poll(within time.Duration, cond func() bool) bool { return testenv.Poll(within, cond) }

func mustGet(t testing.TB, c *Cache[int], key string, s *source) (int, Info) {
	t.Helper()
	v, info, err := c.GetInfo(context.Background(), key, s.loader(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, info
}

// redisServer is a redis-server of the test's own, which it can kill and
// restart.
type redisServer struct{ *testenv.RedisServer }

func startRedisServer(t testing.TB) redisServer {
	t.Helper()
	s := testenv.NewRedisServer(t)
	s.Start()
	return redisServer{s}
}

func (s redisServer) addr() string { return s.Addr() }
func (s redisServer) stop()        { s.Stop() }
func (s redisServer) start()       { s.Start() }

func (s redisServer) client(t testing.TB) *redis.Client {
	return dialRedis(t, &redis.Options{Addr: s.Addr()})
}

// fastOptions are options for fault tests: quick detection and retries.
func fastOptions(ns string) Options {
	return Options{
		Namespace: ns, PingTimeout: 300 * time.Millisecond, ReconnectBackoff: 50 * time.Millisecond,
		RetryInterval: 20 * time.Millisecond, BreakerCooldown: 50 * time.Millisecond, L2Timeout: 200 * time.Millisecond,
	}
}
