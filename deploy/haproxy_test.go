package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// TestRollingRestartBehindHAProxy: three replicas with SHUTDOWN_DELAY
// behind a real haproxy checking GET /readyz (inter 500ms fall 1 rise 2,
// as a readiness probe would); under load, each replica in turn gets
// SIGTERM, exits and starts again on its port. No request fails: the
// balancer drops a draining replica before it stops serving (haproxy
// retries nothing: a request sent to a stopped replica would fail).
func TestRollingRestartBehindHAProxy(t *testing.T) {
	testenv.SkipShort(t)
	haproxy := lookTool(t, "haproxy", "haproxy")
	_, dbURL := testenv.Schema(t)
	ns := testenv.Namespace(t)
	env := []string{"SHUTDOWN_DELAY=2s"}
	addrs := make([]string, 3)
	cmds := make([]*exec.Cmd, 3)
	for i := range addrs {
		addrs[i] = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
		_, cmds[i] = startProductsdAt(t, addrs[i], dbURL, ns, env...)
	}
	front, stats := startHAProxy(t, haproxy, addrs)
	c := &http.Client{Timeout: 5 * time.Second}
	testenv.Eventually(t, 20*time.Second, "haproxy answering", func() bool {
		resp, err := c.Get(front + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{}, 8)
	const loaders = 8
	for range loaders {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(front + "/products?limit=5")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	for i := range cmds {
		_ = cmds[i].Process.Signal(syscall.SIGTERM)
		_ = cmds[i].Wait()
		_, cmds[i] = startProductsdAt(t, addrs[i], dbURL, ns, env...)
		// rise 2 at inter 500ms: wait for the balancer to take it back.
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("haproxy marking r%d UP", i), func() bool {
			return serverUp(c, stats, fmt.Sprintf("r%d", i))
		})
	}
	close(stop)
	for range loaders {
		<-done
	}
	t.Logf("rolling restart of 3 replicas through haproxy: %d requests served, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed (%d served) during the rolling restart", failed.Load(), ok.Load())
	}
}

// serverUp reports whether haproxy's CSV stats show server name UP.
func serverUp(c *http.Client, stats, name string) bool {
	resp, err := c.Get(stats)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "replicas" && f[1] == name {
			return f[17] == "UP"
		}
	}
	return false
}

// startHAProxy runs haproxy in front of backends with the /readyz check
// and returns its base URL and the URL of its CSV stats.
func startHAProxy(t *testing.T, haproxy string, backends []string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	statsAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	var b strings.Builder
	fmt.Fprintf(&b, "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 0\n")
	fmt.Fprintf(&b, "listen stats\n  bind %s\n  stats enable\n  stats uri /stats\n", statsAddr)
	fmt.Fprintf(&b, "frontend api\n  bind %s\n  default_backend replicas\n", addr)
	fmt.Fprintf(&b, "backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n")
	for i, a := range backends {
		fmt.Fprintf(&b, "  server r%d %s check inter 500ms fall 1 rise 2\n", i, a)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return "http://" + addr, "http://" + statsAddr + "/stats;csv"
}
