package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// Passwords the tests put in DATABASE_URL and REDIS_URL; none may show up
// anywhere a client or a log reader can see.
const (
	dbSecret    = "pg-S3cret-pw"
	redisSecret = "redis-S3cret-pw"
)

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{dbSecret, redisSecret} {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a password:\n%s", where, text)
		}
	}
}

// TestSecretsStayHidden starts productsd with passwords in both URLs,
// against a database that is not there and a Redis that refuses the
// password (it wants another), at debug level, and reads every place a
// secret could leak: the logs, /readyz, /metrics and error answers.
func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	rs := testenv.NewRedisServer(t)
	rs.Args = []string{"--requirepass", "another-password"}
	rs.Start()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadDB := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	env := map[string]string{
		"DATABASE_URL":    "postgres://postgres:" + dbSecret + "@" + deadDB + "/postgres?sslmode=disable&connect_timeout=1",
		"REDIS_URL":       "redis://default:" + redisSecret + "@" + rs.Addr() + "/0",
		"CACHE_NAMESPACE": testenv.Namespace(t),
		"LOG_LEVEL":       "debug",
	}
	base, stop, stderr := startRun(t, env, "-addr", "127.0.0.1:0")
	seen := map[string]string{}
	for _, path := range []string{"/readyz", "/products", "/products/00000000-0000-7000-8000-000000000000", "/metrics"} {
		resp := get(t, base+path)
		seen[path] = resp.body
		assertNoSecret(t, "GET "+path, resp.body+headerText(resp.Header))
	}
	if !strings.Contains(seen["/readyz"], `"database":"down"`) || !strings.Contains(seen["/readyz"], `"redis":"down"`) {
		t.Fatalf("/readyz: %s, want database and redis down", seen["/readyz"])
	}
	resp, err := http.Post(base+"/products", "application/json", strings.NewReader(`{"name":"x","price_cents":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The database connection was tried and its failure logged before the
	// logs are read; Redis refusing the password shows in /readyz above
	// (nothing logs it).
	waitFor(t, 10*time.Second, "the log line of the dead database", func() bool {
		return strings.Contains(stderr.String(), "dial error")
	})
	if err := stop(); err != nil {
		assertNoSecret(t, "run's error", err.Error())
	}
	assertNoSecret(t, "the logs", stderr.String())
}

// TestSecretsNotInConfigErrors: a malformed URL with a password is
// refused without repeating the password.
func TestSecretsNotInConfigErrors(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"DATABASE_URL": "postgres://postgres:" + dbSecret + "@127.0.0.1:notaport/x"},
		{"DATABASE_URL": "postgres://postgres:" + dbSecret + "@127.0.0.1/x?sslmode=sometimes"},
		{"REDIS_URL": "redis://default:" + redisSecret + "@127.0.0.1:notaport/0"},
		{"REDIS_URL": "redis://default:" + redisSecret + "@127.0.0.1:6379/notadb"},
		{"REDIS_URL": "rediss://default:" + redisSecret + "@[::1/0"},
	} {
		var stdout, stderr syncBuffer
		err := run(context.Background(), []string{"productsd"}, envFunc(env), &stdout, &stderr)
		if err == nil {
			t.Fatalf("%v: run accepted it", env)
		}
		assertNoSecret(t, "the error for a malformed URL", err.Error()+stdout.String()+stderr.String())
	}
}

func headerText(h http.Header) string {
	var b strings.Builder
	_ = h.Write(&b)
	return b.String()
}
