// Package testenv finds the PostgreSQL and Redis servers tests run against
// and gives each test its own corner of them: a fresh PostgreSQL schema and
// a unique Redis key prefix, both removed when the test ends.
//
// The servers are named by DATABASE_URL and REDIS_URL, with the defaults of
// docs/design.md §5. Under go test -short every test that needs them is skipped;
// otherwise a server that does not answer fails the test with a message
// saying which one and where.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Defaults of DATABASE_URL and REDIS_URL.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// DatabaseURL returns DATABASE_URL or its default.
func DatabaseURL() string { return envOr("DATABASE_URL", DefaultDatabaseURL) }

// RedisURL returns REDIS_URL or its default.
func RedisURL() string { return envOr("REDIS_URL", DefaultRedisURL) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// SkipShort skips t under go test -short: it needs real servers.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and Redis; skipped with -short")
	}
}

// Unique returns prefix followed by a random suffix, usable as a schema
// name or a Redis namespace.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Schema creates a fresh schema, drops it (with everything in it) when t
// ends, and returns its name and a DATABASE_URL whose connections use it
// as their search_path.
func Schema(t testing.TB) (name, databaseURL string) {
	t.Helper()
	SkipShort(t)
	base := DatabaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL at DATABASE_URL=%q is not reachable: %v", base, err)
	}
	defer conn.Close(ctx)
	name = Unique("test_")
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() { dropSchema(t, base, name) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return name, u.String()
}

func dropSchema(t testing.TB, base, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("testenv: drop schema %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
		t.Errorf("testenv: drop schema %s: %v", name, err)
	}
}

// Pool opens a pool on databaseURL (as returned by Schema) and closes it
// when t ends; each configure func adjusts the configuration first.
func Pool(t testing.TB, databaseURL string, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL: %v", err)
	}
	cfg.MaxConns = 4
	for _, f := range configure {
		f(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Redis returns a client of REDIS_URL, failing t if Redis does not answer,
// and closes it when t ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb := RedisClient(t, RedisURL())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis at REDIS_URL=%q is not reachable: %v", RedisURL(), err)
	}
	return rdb
}

// RedisClient returns a client of the Redis at rawURL, with context
// timeouts on, and closes it when t ends. It does not wait for the server:
// it may be down (a [RedisServer] not started, a [Proxy] switched off).
func RedisClient(t testing.TB, rawURL string) *redis.Client {
	t.Helper()
	SkipShort(t)
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("testenv: Redis URL %q: %v", rawURL, err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// RedisURLVia returns REDIS_URL with its host:port replaced by addr, to
// reach the test Redis through a [Proxy].
func RedisURLVia(t testing.TB, addr string) string {
	t.Helper()
	u, err := url.Parse(RedisURL())
	if err != nil {
		t.Fatalf("testenv: REDIS_URL=%q: %v", RedisURL(), err)
	}
	u.Host = addr
	return u.String()
}

// Namespace returns a Redis key prefix no other test uses and deletes its
// keys when t ends.
func Namespace(t testing.TB) string {
	t.Helper()
	rdb := Redis(t)
	ns := Unique("test-" + strings.ToLower(sanitize(t.Name())) + "-")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return ns
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// WithApplicationName returns databaseURL with its application_name set,
// so that a test can find (and terminate) its own backends.
func WithApplicationName(t testing.TB, databaseURL, name string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("testenv: DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// TerminateBackends ends, with pg_terminate_backend, every PostgreSQL
// backend whose application_name is name, waiting for each to exit, and
// returns how many it ended.
func TerminateBackends(t testing.TB, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		t.Errorf("testenv: terminate backends: %v", err)
		return 0
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()) t`, name).Scan(&n)
	if err != nil {
		t.Errorf("testenv: terminate backends: %v", err)
	}
	return n
}
