// Package compare runs one load-test scenario against several cache
// configurations of productsd, each a cluster of its own processes, and
// against a static handler that writes the same bytes with no work: the
// ceiling.
package compare

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tiercache/productcache/internal/httpserver"
	"github.com/tiercache/productcache/loadtest"
	"github.com/tiercache/productcache/loadtest/cluster"
	"github.com/tiercache/productcache/loadtest/meter"
)

// Target is one configuration of a comparison.
type Target struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"` // CACHE_MODE, or "static" for the ceiling
	Replicas int    `json:"replicas"`
	// Env is added to this configuration's replicas' environment
	// (KEY=VALUE), after Config.Cluster.Env: for example
	// REDIS_MIN_REPLICAS_ACK=1.
	Env []string `json:"env,omitempty"`
}

// DefaultTargets are the configurations of docs/design.md §6: the database
// alone, Redis alone (the tutorial's design), L1 alone on three replicas
// (which serves stale data), both tiers, and the static ceiling, which
// runs as many processes as the others, behind the same kind of target
// list.
var DefaultTargets = []Target{
	{Name: "none", Mode: "none", Replicas: 3},
	{Name: "redis", Mode: "redis", Replicas: 3},
	{Name: "local", Mode: "local", Replicas: 3},
	{Name: "tiered", Mode: "tiered", Replicas: 3},
	{Name: "static", Mode: "static", Replicas: 3},
}

// Config configures [Compare].
type Config struct {
	// Scenario is the workload, the same for every configuration; its
	// targets are replaced by each configuration's replicas.
	Scenario loadtest.Scenario
	// Cluster is the template for the replicas (binary, database, Redis);
	// Mode, Replicas and Namespace are set per configuration.
	Cluster cluster.Config
	// Targets are the configurations, in order; default
	// DefaultTargets.
	Targets []Target
	// NamespacePrefix starts every configuration's CACHE_NAMESPACE, which
	// ends with the configuration's name and the start time.
	NamespacePrefix string
	// StaticCommand, when set, runs the static server as its own process
	// (for example {"loadtest", "static"}, to which -addr 127.0.0.1:0,
	// -product-file, -list-file, -etag and -cache-status are added; it
	// prints "listening on http://HOST:PORT"), so that it, like productsd, does
	// not share the generator's runtime. Empty runs it in this process.
	StaticCommand []string
	// Run is passed to every [Run].
	Run loadtest.RunOptions
	// NetLatency, when positive, puts the replicas behind a
	// [cluster.Network] adding this latency each way to Redis and to
	// PostgreSQL, as a network between machines would.
	NetLatency time.Duration
	// Rounds is how many times every configuration runs, the
	// configurations taking turns: round 1 in the order of Targets, round
	// 2 in reverse, and so on, so that a drift in the machine's other load
	// falls on all of them alike. Default 1.
	Rounds int
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

// Row is one configuration's outcome.
type Row struct {
	Target
	Summary *loadtest.Summary `json:"summary"`
}

// Result is the outcome of [Compare].
type Result struct {
	// Rows has a row per configuration: of several rounds, the one with
	// the configuration's median req/s (the lower middle one of an even
	// number), a run that happened rather than a blend of runs.
	Rows []Row `json:"rows"`
	// Rounds has every round's rows, in the order of Targets, when there
	// was more than one; a ratio is then the median of the rounds'.
	Rounds [][]Row `json:"rounds,omitempty"`
	// Thresholds are the results of [Result.Evaluate].
	Thresholds []loadtest.ThresholdResult `json:"thresholds,omitempty"`
}

// Compare runs the scenario against each configuration in turn, starting
// and stopping its processes, and returns a row per configuration. The key
// space is listed (and seeded, if short) once, from the first configuration.
// Every process it starts is stopped before it returns, also on error and
// cancellation.
func Compare(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Targets) == 0 {
		cfg.Targets = DefaultTargets
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.NamespacePrefix == "" {
		cfg.NamespacePrefix = "loadtest-compare"
	}
	if err := cluster.Migrate(ctx, cfg.Cluster.Binary, cfg.Cluster.DatabaseURL, nil); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "loadtest-compare-")
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	defer os.RemoveAll(tmp)
	c := &comparer{cfg: cfg, tmp: tmp, stamp: strconv.FormatInt(time.Now().UnixNano(), 36)}
	if cfg.NetLatency > 0 {
		if c.net, err = cluster.NewNetwork(cfg.Cluster.RedisURL, cfg.Cluster.DatabaseURL, cfg.NetLatency); err != nil {
			return nil, err
		}
		defer c.net.Close()
	}
	res := &Result{}
	rounds := max(1, cfg.Rounds)
	for r := range rounds {
		rows := make([]Row, len(cfg.Targets))
		round := ""
		if rounds > 1 {
			round = fmt.Sprintf("round %d of %d: ", r+1, rounds)
		}
		for k := range cfg.Targets {
			i := k
			if r%2 == 1 { // every other round in reverse order
				i = len(cfg.Targets) - 1 - k
			}
			t := cfg.Targets[i]
			if ctx.Err() != nil {
				return res.finish(rows, rounds), ctx.Err()
			}
			cfg.Logf("compare: %s%s (%s, %d replicas)", round, t.Name, t.Mode, t.Replicas)
			sum, err := c.runOne(ctx, t, r)
			if err != nil {
				return res.finish(rows, rounds), fmt.Errorf("compare: %s: %w", t.Name, err)
			}
			rows[i] = Row{Target: t, Summary: sum}
		}
		res.finish(rows, rounds)
	}
	return res, nil
}

// finish adds a round's rows (those that ran) and picks every
// configuration's median row.
func (r *Result) finish(rows []Row, rounds int) *Result {
	var ran []Row
	for _, row := range rows {
		if row.Summary != nil {
			ran = append(ran, row)
		}
	}
	if len(ran) == 0 {
		return r
	}
	if rounds == 1 {
		r.Rows = ran
		return r
	}
	r.Rounds = append(r.Rounds, ran)
	r.Rows = medianRows(r.Rounds)
	return r
}

// medianRows returns, per configuration in order of first appearance, its
// row with the median req/s.
func medianRows(rounds [][]Row) []Row {
	var names []string
	by := map[string][]Row{}
	for _, rows := range rounds {
		for _, row := range rows {
			if _, ok := by[row.Name]; !ok {
				names = append(names, row.Name)
			}
			by[row.Name] = append(by[row.Name], row)
		}
	}
	out := make([]Row, 0, len(names))
	for _, name := range names {
		rs := slices.Clone(by[name])
		slices.SortStableFunc(rs, func(a, b Row) int { return cmp.Compare(a.Summary.RPS, b.Summary.RPS) })
		out = append(out, rs[(len(rs)-1)/2])
	}
	return out
}

type comparer struct {
	cfg    Config
	net    *cluster.Network // nil: replicas reach Redis and PostgreSQL directly
	tmp    string
	stamp  string
	ids    []string
	static *StaticServer
}

func (c *comparer) runOne(ctx context.Context, t Target, round int) (*loadtest.Summary, error) {
	sc := c.cfg.Scenario
	sc.Thresholds = nil
	sc.Name = t.Name
	if t.Mode == "static" {
		return c.runStatic(ctx, sc, t.Replicas)
	}
	cc := c.cfg.Cluster
	cc.Mode, cc.Replicas = t.Mode, t.Replicas
	cc.Env = append(slices.Clip(cc.Env), t.Env...)
	// Each round starts with cold caches, L2 included, like the first.
	cc.Namespace = fmt.Sprintf("%s-%s-%s", c.cfg.NamespacePrefix, t.Name, c.stamp)
	if round > 0 {
		cc.Namespace += fmt.Sprintf("-r%d", round+1)
	}
	replicas := cc
	if c.net != nil {
		replicas.RedisURL, replicas.DatabaseURL = c.net.RedisURL(), c.net.DatabaseURL()
	}
	cl, err := cluster.StartCluster(ctx, replicas)
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	if c.ids == nil {
		if err := c.setup(ctx, sc, cc, cl.URLs()[0]); err != nil {
			return nil, err
		}
	}
	opt := c.cfg.Run
	opt.Targets, opt.IDs = cl.URLs(), c.ids
	cpu := meter.NewCPU(ctx, cc.RedisURL, cc.DatabaseURL)
	defer cpu.Close()
	opt.CPU, opt.Stored = cpu, meter.StoredVersions(cc.DatabaseURL)
	return runMetered(ctx, &sc, opt, cc.RedisURL)
}

// setup lists (seeding if short) the key space once, and copies the bytes
// the static server will serve.
func (c *comparer) setup(ctx context.Context, sc loadtest.Scenario, cc cluster.Config, base string) error {
	env := []string{"CACHE_NAMESPACE=" + cc.Namespace}
	if cc.RedisURL != "" {
		env = append(env, "REDIS_URL="+cc.RedisURL)
	}
	seed := func(ctx context.Context, n int) error {
		return cluster.Seed(ctx, cc.Binary, cc.DatabaseURL, n, nil, env...)
	}
	client := loadtest.NewClient(8, 30*time.Second)
	defer client.CloseIdleConnections()
	ids, err := loadtest.EnsureProducts(ctx, client, base, sc.Setup.Products, seed, c.cfg.Logf)
	if err != nil {
		return err
	}
	c.ids = ids
	c.static, err = FetchStatic(ctx, client, base, ids[0])
	return err
}

// runStatic serves the captured bytes from n servers and runs the scenario
// against them.
func (c *comparer) runStatic(ctx context.Context, sc loadtest.Scenario, n int) (*loadtest.Summary, error) {
	if c.static == nil {
		return nil, errors.New("static needs a productsd configuration before it, to copy its bytes")
	}
	var urls []string
	for range max(1, n) {
		url, stop, err := c.startStatic(ctx)
		if err != nil {
			return nil, err
		}
		defer stop()
		urls = append(urls, url)
	}
	opt := c.cfg.Run
	opt.Targets, opt.IDs = urls, c.ids
	// The ceiling uses neither Redis nor the database, which idle meanwhile:
	// their CPU counts as for the others, for a complete total.
	// (The lost-write check has no database to read: the ceiling writes
	// nowhere.)
	cpu := meter.NewCPU(ctx, c.cfg.Cluster.RedisURL, c.cfg.Cluster.DatabaseURL)
	defer cpu.Close()
	opt.CPU = cpu
	return runMetered(ctx, &sc, opt, c.cfg.Cluster.RedisURL)
}

// runMetered runs the scenario with Redis's CPU split by command family
// (INFO commandstats) when there is a Redis to read.
func runMetered(ctx context.Context, sc *loadtest.Scenario, opt loadtest.RunOptions, redisURL string) (*loadtest.Summary, error) {
	if redisURL != "" {
		if m, err := cluster.NewRedisMeter(redisURL); err == nil {
			defer m.Close()
			opt.RedisMeter = m
		}
	}
	return loadtest.Run(ctx, sc, opt)
}

func (c *comparer) startStatic(ctx context.Context) (string, func(), error) {
	if len(c.cfg.StaticCommand) == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		srv := httpserver.New(c.static, nil)
		go srv.Serve(l)
		return "http://" + l.Addr().String(), func() { srv.Close() }, nil
	}
	product, list := filepath.Join(c.tmp, "product.json"), filepath.Join(c.tmp, "list.json")
	if err := os.WriteFile(product, c.static.Product, 0o600); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(list, c.static.List, 0o600); err != nil {
		return "", nil, err
	}
	args := append(append([]string(nil), c.cfg.StaticCommand[1:]...),
		"-addr", "127.0.0.1:0", "-product-file", product, "-list-file", list, "-etag", c.static.ETag, "-cache-status", c.static.CacheStatus)
	// The replicas' extra environment applies to the ceiling's processes
	// too (GOMAXPROCS=1, say), so that they are sized alike.
	p, url, err := cluster.StartServer(ctx, c.cfg.StaticCommand[0], args, c.cfg.Cluster.Env, c.cfg.Cluster.Output, 10*time.Second)
	if err != nil {
		return "", nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cluster.Poll(wctx, &http.Client{Timeout: time.Second}, url+"/healthz", p.Exited(), p.Output); err != nil {
		p.Stop()
		return "", nil, err
	}
	return url, p.Stop, nil
}
