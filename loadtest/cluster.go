package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// ClusterConfig describes productsd replicas to start on this machine.
type ClusterConfig struct {
	Binary      string // the productsd binary
	DatabaseURL string
	RedisURL    string
	Mode        string // CACHE_MODE; default tiered
	Replicas    int    // default 3
	Namespace   string // CACHE_NAMESPACE; required, fresh per cluster
	LogLevel    string // LOG_LEVEL; default warn
	// Env is added to every replica's environment (KEY=value).
	Env []string
	// Output receives the replicas' stdout and stderr; nil keeps only the
	// last few KB of each, for error messages.
	Output io.Writer
	// StartTimeout bounds the wait for every replica to answer /healthz;
	// default 30s.
	StartTimeout time.Duration
}

// Cluster is a set of running productsd processes on 127.0.0.1.
type Cluster struct {
	URLs  []string
	procs []*proc
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	out    *tailBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after exited
}

// StartCluster starts cfg.Replicas productsd processes on free loopback
// ports and waits until each answers /healthz (and /readyz, if it turns
// ready in time). On error everything started is stopped.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Binary == "" || cfg.Namespace == "" {
		return nil, errors.New("loadtest: cluster: binary and namespace are required")
	}
	if cfg.Mode == "" {
		cfg.Mode = "tiered"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 3
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	c := &Cluster{}
	for i := range cfg.Replicas {
		p, err := startReplica(cfg, i)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.URLs = append(c.URLs, p.url)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	for _, p := range c.procs {
		if err := p.waitHealthy(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func startReplica(cfg ClusterConfig, i int) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(cfg.Binary, "-addr", addr)
	cmd.Env = append(os.Environ(),
		"ADDR="+addr,
		"CACHE_MODE="+cfg.Mode,
		"CACHE_NAMESPACE="+cfg.Namespace,
		"REPLICA_ID="+fmt.Sprintf("%s-%d", cfg.Namespace, i),
		"LOG_LEVEL="+cfg.LogLevel,
	)
	if cfg.DatabaseURL != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+cfg.DatabaseURL)
	}
	if cfg.RedisURL != "" {
		cmd.Env = append(cmd.Env, "REDIS_URL="+cfg.RedisURL)
	}
	cmd.Env = append(cmd.Env, cfg.Env...)
	return startProcess(cmd, "http://"+addr, cfg.Output)
}

// startProcess starts cmd, which will serve at url, as a child that dies
// with this process.
func startProcess(cmd *exec.Cmd, url string, output io.Writer) (*proc, error) {
	cmd.SysProcAttr = childAttr()
	p := &proc{cmd: cmd, url: url, out: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	var w io.Writer = p.out
	if output != nil {
		w = io.MultiWriter(p.out, output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start %s: %w", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitHealthy polls /healthz until 200, then /readyz for up to 5s more: a
// replica must not fill L1 before its subscription is confirmed, so ready
// replicas make the first seconds of a run representative.
func (p *proc) waitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	if err := p.poll(ctx, client, "/healthz"); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = p.poll(rctx, client, "/readyz")
	return nil
}

func (p *proc) poll(ctx context.Context, client *http.Client, path string) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("loadtest: cluster: %s exited: %v\n%s", p.url, p.err, p.out.String())
		case <-ctx.Done():
			return fmt.Errorf("loadtest: cluster: %s%s not OK in time: %w\n%s", p.url, path, ctx.Err(), p.out.String())
		case <-t.C:
		}
	}
}

// Stop terminates every replica (SIGTERM, then SIGKILL after 5s) and waits
// for them. It is safe to call more than once.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Go(p.stop)
	}
	wg.Wait()
}

func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = terminate(p.cmd.Process)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Output returns the last output of every replica, for diagnostics.
func (c *Cluster) Output() string {
	var b bytes.Buffer
	for _, p := range c.procs {
		fmt.Fprintf(&b, "== %s\n%s\n", p.url, p.out.String())
	}
	return b.String()
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before productsd binds it; StartCluster then fails clearly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loadtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
