package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// process is a productsd binary running for a test.
type process struct {
	name   string
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan error
}

// buildBinary builds productsd once for the whole package.
func buildBinary(t *testing.T) string {
	t.Helper()
	return testenv.Build(t, ".", ".")
}

// startProcess starts bin with env added to the environment and waits for
// its listening line.
func startProcess(t *testing.T, bin, name string, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-replica-id", name)
	cmd.Env = os.Environ()
	if _, ok := env["CACHE_STALENESS_BOUND"]; !ok {
		// Tests that assert L1 hits are not about the freshness lease: on
		// a loaded machine a replica may fall 25ms behind, and its reads
		// then rightly bypass L1. The lease is tested in tiercache.
		cmd.Env = append(cmd.Env, "CACHE_STALENESS_BOUND=1s")
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: name, cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	select {
	case line := <-lines:
		m := listenRE.FindStringSubmatch(line)
		if m == nil || m[3] != name {
			t.Fatalf("%s: unexpected first line %q", name, line)
		}
		p.url = m[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no listening line; stderr:\n%s", name, p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and checks the process exits cleanly in time.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s: exit: %v\nstderr:\n%s", p.name, err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("%s: did not exit within 15s of SIGTERM", p.name)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"productsd: stopped"`) {
		t.Errorf("%s: no clean stop in its log:\n%s", p.name, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "NOPERM") {
		t.Errorf("%s: Redis refused a command (NOPERM) in its log:\n%s", p.name, p.stderr.String())
	}
}

// version GETs product id through p: its version, 0 for 404.
func (p *process) version(t *testing.T, id string) int {
	t.Helper()
	r := get(t, p.url+"/products/"+id)
	switch r.StatusCode {
	case http.StatusNotFound:
		return 0
	case http.StatusOK:
	default:
		t.Fatalf("%s: GET: %d %s", p.name, r.StatusCode, r.body)
	}
	var v int
	if _, err := fmt.Sscanf(r.body[strings.Index(r.body, `"version":`):], `"version":%d`, &v); err != nil {
		t.Fatalf("%s: no version in %s", p.name, r.body)
	}
	return v
}

// TestEndToEnd runs three productsd processes on one schema and one Redis
// namespace: a write through one is seen through the others over real
// HTTP, and SIGTERM stops each cleanly.
func TestEndToEnd(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	env := map[string]string{"CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(), "LOG_LEVEL": "info"}
	ps := startReplicas(t, env, "e2e-a", "e2e-b", "e2e-c")
	exerciseReplicas(t, ps)
	for _, p := range ps {
		p.stop(t)
	}
}

// startReplicas starts one productsd process per name on a fresh schema,
// with env, and waits until each is ready with its invalidation channel up.
func startReplicas(t *testing.T, env map[string]string, names ...string) []*process {
	t.Helper()
	bin := buildBinary(t)
	_, env["DATABASE_URL"] = testenv.Schema(t)
	var ps []*process
	for _, name := range names {
		ps = append(ps, startProcess(t, bin, name, env))
	}
	for _, p := range ps {
		waitFor(t, 20*time.Second, p.name+" ready", func() bool {
			r := get(t, p.url+"/readyz")
			return r.StatusCode == http.StatusOK && strings.Contains(r.body, `"invalidation":"up"`)
		})
	}
	return ps
}

// exerciseReplicas checks reads, writes, list pages and invalidation across
// ps over real HTTP: a write through one is seen through the others.
func exerciseReplicas(t *testing.T, ps []*process) {
	t.Helper()
	a := ps[0]
	id := post(t, a.url, `{"name":"e2e","price_cents":100}`)
	for _, p := range ps {
		p.version(t, id)
		p.version(t, id) // now in every L1
	}
	req, _ := http.NewRequest(http.MethodPut, a.url+"/products/"+id, strings.NewReader(`{"name":"e2e","price_cents":200}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", `"1"`)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, p := range ps {
		waitFor(t, time.Second, p.name+" to see version 2", func() bool { return p.version(t, id) == 2 })
	}
	// List pages: a new product appears everywhere, a deleted one goes.
	for _, p := range ps {
		get(t, p.url+"/products?limit=200")
	}
	id2 := post(t, ps[1%len(ps)].url, `{"name":"e2e second","price_cents":1}`)
	for _, p := range ps {
		waitFor(t, time.Second, p.name+" to list the new product", func() bool {
			return strings.Contains(get(t, p.url+"/products?limit=200").body, id2)
		})
	}
	req, _ = http.NewRequest(http.MethodDelete, ps[2%len(ps)].url+"/products/"+id2, nil)
	if resp, err = client.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, p := range ps {
		waitFor(t, time.Second, p.name+" to drop the deleted product", func() bool {
			return !strings.Contains(get(t, p.url+"/products?limit=200").body, id2) && p.version(t, id2) == 0
		})
	}
	if m := get(t, a.url+"/metrics").body; !strings.Contains(m, `productsd_db_queries_total{op="update"} 1`) {
		t.Errorf("/metrics of %s lacks the update count", a.name)
	}
}
