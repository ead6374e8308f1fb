package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config describes productsd replicas to start on this machine.
type Config struct {
	Binary      string // the productsd binary
	DatabaseURL string
	RedisURL    string
	// RedisURLFor, when set, gives replica i its own REDIS_URL (for
	// example through a proxy); "" falls back to RedisURL.
	RedisURLFor func(i int) string
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
	replicas []*Replica
}

// Replica is one productsd process of a cluster. Its URL stays the same
// across restarts: a restarted replica listens on the port it had.
type Replica struct {
	Index int
	cfg   Config

	mu   sync.Mutex // guards proc and url
	proc *Process
	url  string
}

// StartCluster starts cfg.Replicas productsd processes, each on a port of
// its own choosing, and waits until each answers /healthz (and /readyz, if
// it turns ready in time). On error everything started is stopped. The
// processes get SIGTERM when ctx ends.
func StartCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Binary == "" || cfg.Namespace == "" {
		return nil, errors.New("cluster: binary and namespace are required")
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
		r := &Replica{Index: i, cfg: cfg}
		if err := r.start(ctx, "127.0.0.1:0"); err != nil {
			c.Stop()
			return nil, err
		}
		c.replicas = append(c.replicas, r)
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	for _, r := range c.replicas {
		if err := r.WaitHealthy(wctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (r *Replica) start(ctx context.Context, addr string) error {
	cfg := r.cfg
	env := []string{
		"ADDR=" + addr,
		"CACHE_MODE=" + cfg.Mode,
		"CACHE_NAMESPACE=" + cfg.Namespace,
		"REPLICA_ID=" + fmt.Sprintf("%s-%d", cfg.Namespace, r.Index),
		"LOG_LEVEL=" + cfg.LogLevel,
	}
	if cfg.DatabaseURL != "" {
		env = append(env, "DATABASE_URL="+cfg.DatabaseURL)
	}
	redisURL := cfg.RedisURL
	if cfg.RedisURLFor != nil {
		if u := cfg.RedisURLFor(r.Index); u != "" {
			redisURL = u
		}
	}
	if redisURL != "" {
		env = append(env, "REDIS_URL="+redisURL)
	}
	env = append(env, cfg.Env...)
	p, url, err := StartServer(ctx, cfg.Binary, []string{"-addr", addr}, env, cfg.Output, cfg.StartTimeout)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.proc, r.url = p, url
	r.mu.Unlock()
	return nil
}

// URLs are the replicas' base URLs.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.URL()
	}
	return out
}

// Replicas are the cluster's replicas.
func (c *Cluster) Replicas() []*Replica { return c.replicas }

// URL is the replica's base URL, http://127.0.0.1:PORT.
func (r *Replica) URL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.url
}

// Process is the replica's current process.
func (r *Replica) Process() *Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// Kill SIGKILLs the replica and waits until it is gone.
func (r *Replica) Kill() { r.Process().Kill() }

// Stop SIGTERMs the replica (a graceful shutdown) and waits until it is
// gone.
func (r *Replica) Stop() { r.Process().Stop() }

// Restart starts the replica again, on the port it had, after it was
// killed or stopped, and waits until it answers /healthz (at most the
// start timeout). The new process gets SIGTERM when ctx ends, like those
// StartCluster started, so pass the cluster's context, not a short one.
func (r *Replica) Restart(ctx context.Context) error {
	p := r.Process()
	select {
	case <-p.Exited():
	default:
		return fmt.Errorf("cluster: replica %d still runs", r.Index)
	}
	addr := strings.TrimPrefix(r.URL(), "http://")
	if err := r.start(ctx, addr); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	return r.WaitHealthy(wctx)
}

// WaitHealthy polls /healthz until 200, then /readyz for up to 5s more: a
// replica must not fill L1 before its subscription is confirmed, so ready
// replicas make the first seconds of a run representative.
func (r *Replica) WaitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	if err := r.poll(ctx, client, "/healthz"); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = r.poll(rctx, client, "/readyz")
	return nil
}

// WaitReady polls /readyz until 200.
func (r *Replica) WaitReady(ctx context.Context) error {
	return r.poll(ctx, &http.Client{Timeout: time.Second}, "/readyz")
}

func (r *Replica) poll(ctx context.Context, client *http.Client, path string) error {
	p, url := r.Process(), r.URL()
	return Poll(ctx, client, url+path, p.Exited(), p.Output)
}

// Poll GETs u every 25ms until it answers 200, ctx ends or exited closes.
// output, when set, is added to errors.
func Poll(ctx context.Context, client *http.Client, u string, exited <-chan struct{}, output func() string) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	out := func() string {
		if output == nil {
			return ""
		}
		return "\n" + output()
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("cluster: the server of %s exited%s", u, out())
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not OK in time: %w%s", u, ctx.Err(), out())
		case <-t.C:
		}
	}
}

// Stop terminates every replica (SIGTERM, then SIGKILL after StopDelay)
// and waits for them. It is safe to call more than once.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		if p := r.Process(); p != nil {
			wg.Go(p.Stop)
		}
	}
	wg.Wait()
}

// Output returns the last output of every replica, for diagnostics.
func (c *Cluster) Output() string {
	var b bytes.Buffer
	for _, r := range c.replicas {
		fmt.Fprintf(&b, "== %s\n%s\n", r.URL(), r.Process().Output())
	}
	return b.String()
}
