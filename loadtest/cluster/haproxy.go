package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HAProxyConfig describes an haproxy process in front of productsd
// replicas.
type HAProxyConfig struct {
	// Binary is the haproxy binary; default "haproxy" on the PATH.
	Binary string
	// Backends are the replicas' host:port, named r0, r1, ... in order.
	Backends []string
	// Retries, if positive, lets haproxy retry a request whose connection
	// to a replica failed (nothing was sent) on another replica, that many
	// times. 0 retries nothing.
	Retries int
	// Dir holds the configuration file; default a temporary directory
	// removed by Stop.
	Dir string
	// Output receives haproxy's output; nil discards it.
	Output io.Writer
}

// HAProxy is a running haproxy that balances HTTP round robin over
// productsd replicas and takes a replica out as its readiness probe
// would: GET /readyz every 500 ms, out after one failure, back after
// two successes (the k8s manifests' readinessProbe).
type HAProxy struct {
	proc   *Process
	url    string
	stats  string
	remove string // a directory Stop removes
}

// HAProxyText is the configuration of an haproxy listening on addr, with
// its CSV statistics on statsAddr, in front of cfg.Backends.
func HAProxyText(addr, statsAddr string, cfg HAProxyConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries %d\n", cfg.Retries)
	if cfg.Retries > 0 {
		b.WriteString("  option redispatch 1\n")
	}
	fmt.Fprintf(&b, "listen stats\n  bind %s\n  stats enable\n  stats uri /stats\n", statsAddr)
	fmt.Fprintf(&b, "frontend api\n  bind %s\n  default_backend replicas\n", addr)
	b.WriteString("backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n")
	for i, a := range cfg.Backends {
		fmt.Fprintf(&b, "  server %s %s check inter 500ms fall 1 rise 2\n", ServerName(i), a)
	}
	return b.String()
}

// ServerName is haproxy's name of backend i.
func ServerName(i int) string { return "r" + strconv.Itoa(i) }

// StartHAProxy starts haproxy on free ports of 127.0.0.1 and waits until
// its statistics answer. It gets SIGTERM when ctx ends.
func StartHAProxy(ctx context.Context, cfg HAProxyConfig) (*HAProxy, error) {
	if cfg.Binary == "" {
		cfg.Binary = "haproxy"
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("cluster: haproxy: %w (Debian package haproxy)", err)
	}
	h := &HAProxy{}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "haproxy"); err != nil {
			return nil, err
		}
		h.remove = cfg.Dir
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	statsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(cfg.Dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(HAProxyText(addr, statsAddr, cfg)), 0o644); err != nil {
		return nil, err
	}
	h.url, h.stats = "http://"+addr, "http://"+statsAddr+"/stats;csv"
	if h.proc, err = Start(ctx, bin, []string{"-db", "-f", file}, nil, cfg.Output, nil); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, err := h.Servers(wctx); err == nil {
			return h, nil
		}
		select {
		case <-h.proc.Exited():
			h.Stop()
			return nil, fmt.Errorf("cluster: haproxy exited: %v\n%s", h.proc.Err(), h.proc.Output())
		case <-wctx.Done():
			h.Stop()
			return nil, fmt.Errorf("cluster: haproxy statistics not answering: %w", wctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freeAddr is a free port of 127.0.0.1 (haproxy cannot pick one and say
// which).
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("cluster: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// URL is the balancer's base URL.
func (h *HAProxy) URL() string { return h.url }

// Stop stops haproxy.
func (h *HAProxy) Stop() {
	h.proc.Stop()
	if h.remove != "" {
		_ = os.RemoveAll(h.remove)
	}
}

// Server is one backend as haproxy's statistics show it.
type Server struct {
	Status  string // UP, DOWN, ...
	Current int64  // requests in flight on it (scur)
	Total   int64  // requests sent to it so far (stot)
}

// Servers reads haproxy's statistics: every backend by name.
func (h *HAProxy) Servers(ctx context.Context) (map[string]Server, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.stats, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("cluster: haproxy statistics: " + resp.Status)
	}
	return parseServers(string(b)), nil
}

// parseServers reads the servers of backend "replicas" from haproxy's
// CSV statistics: pxname, svname, qcur, qmax, scur, smax, slim, stot, ...
// status is field 17.
func parseServers(csv string) map[string]Server {
	out := make(map[string]Server)
	for _, line := range strings.Split(csv, "\n") {
		f := strings.Split(line, ",")
		if len(f) <= 17 || f[0] != "replicas" || f[1] == "BACKEND" {
			continue
		}
		cur, _ := strconv.ParseInt(f[4], 10, 64)
		tot, _ := strconv.ParseInt(f[7], 10, 64)
		out[f[1]] = Server{Status: f[17], Current: cur, Total: tot}
	}
	return out
}

// ServerUp reports whether haproxy shows backend name UP.
func (h *HAProxy) ServerUp(ctx context.Context, name string) bool {
	s, err := h.Servers(ctx)
	return err == nil && s[name].Status == "UP"
}
