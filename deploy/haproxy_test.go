package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/loadtest/cluster"
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
	lb, err := cluster.StartHAProxy(t.Context(), cluster.HAProxyConfig{Binary: haproxy, Backends: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lb.Stop)
	front := lb.URL()
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
			return lb.ServerUp(t.Context(), cluster.ServerName(i))
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
