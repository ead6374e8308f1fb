package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// TestPprofOffByDefault: the API never serves /debug/pprof, and
// PPROF_ADDR, when set, serves it on a listener of its own.
func TestPprofOffByDefault(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL()}
	base, _, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	if got := get(t, base+"/debug/pprof/").StatusCode; got != http.StatusNotFound {
		t.Fatalf("API /debug/pprof/: got %d, want 404", got)
	}

	var out bytes.Buffer
	stop, err := servePprof("127.0.0.1:0", &out, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`pprof listening on (http://\S+)/debug/pprof/`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no listening line in %q", out.String())
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(m[1] + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof cmdline: got %d, want 200", resp.StatusCode)
	}
}
