package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tiercache/productcache/internal/httpserver"
	"github.com/tiercache/productcache/loadtest"
	"github.com/tiercache/productcache/loadtest/chaos"
	"github.com/tiercache/productcache/loadtest/cluster"
	"github.com/tiercache/productcache/loadtest/compare"
	"github.com/tiercache/productcache/loadtest/meter"
)

// Defaults of docs/design.md §5, used when the environment does not say.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// commandUsage is the first line of each command's -h.
var commandUsage = map[string]string{
	"run":     "loadtest run [flags] [scenario.yaml|json]\n\nWithout a file, the default scenario: " + defaultScenarioText,
	"demo":    "loadtest demo [flags] [scenario.yaml|json]\n\nStarts -replicas productsd processes on free ports, seeds, runs the scenario\n(default: " + defaultScenarioText + "), stops everything.",
	"compare": "loadtest compare [flags] [scenario.yaml|json]\n\nRuns one scenario (default: " + defaultScenarioText + ", 3s warmup, 8s)\nagainst each of -configs and prints a table.",
	"chaos":   "loadtest chaos [flags]\n\nStarts a private redis-server (DEBUG allowed), a fresh database and -replicas tiered\nproductsd replicas (the last one reaches Redis through a proxy), then runs the default\nscenario once per phase while injecting that phase's fault, and prints a table.\nExit status 99 when a phase broke its bound.",
	"static":  "loadtest static [flags]\n\nServes the same product bytes for any /products/{id}: the ceiling.",
}

const defaultScenarioText = "32 VUs for 12s, Zipf s=1.1 over 10000 products,\nget=97,list=1,update=1.5,create=0.25,delete=0.25 through random targets, the consistency\nprobe on, thresholds http_req_failed<0.01, checks>0.99, stale_reads==0"

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", commandUsage[name])
		fs.PrintDefaults()
	}
	return fs
}

// runCmd: loadtest run [flags] [scenario].
func runCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr)
	var f scenarioFlags
	f.register(fs)
	seedBin := fs.String("seed-binary", "", "productsd binary: make missing products with 'productsd seed' instead of POST")
	dbURL := fs.String("database-url", envOr(getenv, "DATABASE_URL", defaultDatabaseURL),
		"database for -seed-binary ($DATABASE_URL); when given as a flag, the lost-write check reads every acknowledged write from it too, and the CPU of its backends counts (when it is on this machine)")
	redisURL := fs.String("redis-url", "", "the targets' Redis: its CPU time (INFO cpu) counts in the CPU per request")
	file, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	sc, err := f.scenario(fs, file, loadtest.DefaultScenario())
	if err != nil {
		return err
	}
	if len(sc.Targets) == 0 {
		if t := getenv("TARGETS"); t != "" {
			sc.Targets = splitList(t)
		} else {
			return usageError{errNoTargets}
		}
	}
	opt := f.runOptions(stderr)
	if *seedBin != "" {
		opt.Seed = func(ctx context.Context, n int) error { return cluster.Seed(ctx, *seedBin, *dbURL, n, nil) }
	}
	cpuDB := ""
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "database-url" {
			cpuDB = *dbURL // named on purpose: the lost-write check reads it too
			opt.Stored = meter.StoredVersions(cpuDB)
		}
	})
	cpu := meter.NewCPU(ctx, *redisURL, cpuDB)
	defer cpu.Close()
	opt.CPU = cpu
	if err := f.validateOuts(); err != nil {
		return err
	}
	if err := sc.Normalize(); err != nil {
		return usageError{err}
	}
	sum, err := loadtest.Run(ctx, sc, opt)
	if err != nil {
		return err
	}
	return f.report(sum, stdout)
}

// clusterFlags locate productsd and its servers for demo and compare.
type clusterFlags struct {
	binary, databaseURL, redisURL string
	replicas                      int
	netLatency                    time.Duration // added each way between the replicas and Redis and PostgreSQL
	freshDB, verbose              bool
	env                           envFlag // added to every replica's environment
}

// envFlag collects repeated KEY=VALUE flags.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }

func (e *envFlag) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func (c *clusterFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.binary, "productsd", "bin/productsd", "the productsd binary")
	fs.StringVar(&c.databaseURL, "database-url", envOr(getenv, "DATABASE_URL", defaultDatabaseURL), "PostgreSQL ($DATABASE_URL)")
	fs.StringVar(&c.redisURL, "redis-url", envOr(getenv, "REDIS_URL", defaultRedisURL), "Redis ($REDIS_URL)")
	fs.IntVar(&c.replicas, "replicas", 3, "productsd replicas")
	fs.DurationVar(&c.netLatency, "net-latency", 0, "simulate a network: an in-process proxy adds this latency each way between the replicas and Redis and PostgreSQL (e.g. 500us)")
	fs.BoolVar(&c.freshDB, "fresh-db", true, "run against a new database, dropped at the end")
	fs.BoolVar(&c.verbose, "v", false, "show productsd output")
	fs.Var(&c.env, "replica-env", "KEY=VALUE added to every replica's environment (in compare, the static ceiling's processes too), e.g. GOMAXPROCS=1 or CACHE_L1_TTL=5s (repeatable)")
}

// database returns the URL to use and a cleanup that drops the database
// when it was made for this run.
func (c *clusterFlags) database(ctx context.Context, stderr io.Writer) (string, func(), error) {
	if !c.freshDB {
		return c.databaseURL, func() {}, nil
	}
	u, drop, err := cluster.TempDatabase(ctx, c.databaseURL, "loadtest")
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(stderr, "loadtest: using a fresh database (%s)\n", cluster.Redact(u))
	return u, drop, nil
}

// cleanRedis removes the keys of the namespaces starting with prefix; it
// runs after the replicas have stopped (defers run last in, first out).
func (c *clusterFlags) cleanRedis(prefix string, stderr io.Writer) {
	if err := cluster.CleanRedis(c.redisURL, prefix); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
	}
}

func (c *clusterFlags) output(stderr io.Writer) io.Writer {
	if c.verbose {
		return stderr
	}
	return nil
}

// demoCmd: start replicas, seed, run the default scenario, stop.
func demoCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	var f scenarioFlags
	var c clusterFlags
	f.register(fs)
	c.register(fs, getenv)
	mode := fs.String("mode", "tiered", "CACHE_MODE of the replicas")
	file, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := rejectTargets(fs); err != nil {
		return err
	}
	sc, err := f.scenario(fs, file, loadtest.DefaultScenario())
	if err != nil {
		return err
	}
	if err := f.validateOuts(); err != nil {
		return err
	}
	sc.Targets = []string{"http://placeholder"} // replaced by the replicas
	if err := sc.Normalize(); err != nil {
		return usageError{err}
	}
	dbURL, drop, err := c.database(ctx, stderr)
	if err != nil {
		return err
	}
	defer drop()
	ns := fmt.Sprintf("loadtest-demo-%d", time.Now().UnixNano())
	defer c.cleanRedis(ns, stderr)
	seedEnv := []string{"CACHE_NAMESPACE=" + ns, "REDIS_URL=" + c.redisURL}
	fmt.Fprintf(stderr, "loadtest: migrating and seeding %d products\n", sc.Setup.Products)
	if err := cluster.Migrate(ctx, c.binary, dbURL, nil); err != nil {
		return err
	}
	opt := f.runOptions(stderr)
	cpu := meter.NewCPU(ctx, c.redisURL, dbURL)
	defer cpu.Close()
	opt.CPU, opt.Stored = cpu, meter.StoredVersions(dbURL)
	seed := func(ctx context.Context, n int) error { return cluster.Seed(ctx, c.binary, dbURL, n, nil, seedEnv...) }
	if c.freshDB {
		if err := seed(ctx, sc.Setup.Products); err != nil {
			return err
		}
	} else {
		opt.Seed = seed
	}
	replicaDB, replicaRedis := dbURL, c.redisURL
	if c.netLatency > 0 {
		nw, err := cluster.NewNetwork(c.redisURL, dbURL, c.netLatency)
		if err != nil {
			return err
		}
		defer nw.Close()
		replicaDB, replicaRedis = nw.DatabaseURL(), nw.RedisURL()
		fmt.Fprintf(stderr, "loadtest: the replicas reach Redis and PostgreSQL through proxies adding %v each way\n", c.netLatency)
	}
	cl, err := cluster.StartCluster(ctx, cluster.Config{
		Binary: c.binary, DatabaseURL: replicaDB, RedisURL: replicaRedis, Mode: *mode,
		Replicas: c.replicas, Namespace: ns, Output: c.output(stderr), Env: c.env,
	})
	if err != nil {
		return err
	}
	defer cl.Stop()
	fmt.Fprintf(stderr, "loadtest: %d %s replicas: %s\n", c.replicas, *mode, strings.Join(cl.URLs(), " "))
	opt.Targets = cl.URLs()
	sum, err := loadtest.Run(ctx, sc, opt)
	if err != nil {
		return err
	}
	return f.report(sum, stdout)
}

// compareCmd: the same scenario against each configuration.
func compareCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", stderr)
	var f scenarioFlags
	var c clusterFlags
	f.register(fs)
	c.register(fs, getenv)
	configs := fs.String("configs", "none,redis,local,tiered,static", "configurations, in order (none, redis, local, tiered, static)")
	inProcess := fs.Bool("static-in-process", false, "serve the static ceiling from this process instead of child processes (its CPU is then not measured)")
	rounds := fs.Int("rounds", 1, "run every configuration this many times, taking turns (round 2 in reverse order); rows and ratios are then medians")
	privateRedis := fs.Bool("private-redis", true, "run the replicas against a redis-server of their own, so that its CPU time is theirs alone (-private-redis=false: -redis-url)")
	file, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := rejectTargets(fs); err != nil {
		return err
	}
	thresholds, err := compareThresholds(f.thresholds)
	if err != nil {
		return err
	}
	f.thresholds = nil // a comparison's thresholds are its own, not the scenario's
	base := loadtest.DefaultScenario()
	base.Duration = loadtest.Duration(8 * time.Second)
	base.Warmup = loadtest.Duration(3 * time.Second)
	sc, err := f.scenario(fs, file, base)
	if err != nil {
		return err
	}
	targets, err := compareTargets(*configs, c.replicas)
	if err != nil {
		return err
	}
	if *rounds < 1 {
		return usagef("-rounds must be at least 1, got %d", *rounds)
	}
	if err := f.validateOuts(); err != nil {
		return err
	}
	sc.Targets = []string{"http://placeholder"}
	if err := sc.Normalize(); err != nil {
		return usageError{err}
	}
	dbURL, drop, err := c.database(ctx, stderr)
	if err != nil {
		return err
	}
	defer drop()
	prefix := fmt.Sprintf("loadtest-compare-%d", time.Now().UnixNano())
	if *privateRedis {
		rs, err := cluster.StartRedis(ctx, c.output(stderr))
		if err != nil {
			return fmt.Errorf("%w (or run with -private-redis=false)", err)
		}
		defer rs.Stop()
		c.redisURL = rs.URL()
		fmt.Fprintf(stderr, "loadtest: a private redis-server on %s\n", rs.Addr())
	} else {
		defer c.cleanRedis(prefix, stderr)
		fmt.Fprintf(stderr, "loadtest: cache namespaces %s-<config>-*\n", prefix)
	}
	cfg := compare.Config{
		NamespacePrefix: prefix,
		Scenario:        *sc,
		Cluster:         cluster.Config{Binary: c.binary, DatabaseURL: dbURL, RedisURL: c.redisURL, Output: c.output(stderr), Env: c.env},
		Targets:         targets,
		Run:             f.runOptions(stderr),
		NetLatency:      c.netLatency,
		Rounds:          *rounds,
		Logf:            func(format string, args ...any) { fmt.Fprintf(stderr, "loadtest: "+format+"\n", args...) },
	}
	if c.netLatency > 0 {
		fmt.Fprintf(stderr, "loadtest: the replicas reach Redis and PostgreSQL through proxies adding %v each way\n", c.netLatency)
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.StaticCommand = []string{exe, "static", "-metrics"}
	}
	res, err := compare.Compare(ctx, cfg)
	if res != nil && len(res.Rows) > 0 {
		res.Evaluate(thresholds)
		res.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if err := writeCompareOuts(res, f.outs); err != nil {
		return err
	}
	if f.summaryExport != "" {
		if err := reportRow(res).Summary.WriteK6SummaryExport(f.summaryExport); err != nil {
			return err
		}
	}
	if !res.ThresholdsOK() {
		return fmt.Errorf("%w: %d of %d", loadtest.ErrThresholds, countFailed(res.Thresholds), len(res.Thresholds))
	}
	return nil
}

// compareThresholds parses the -threshold flags of compare.
func compareThresholds(list []string) ([]loadtest.Threshold, error) {
	var out []loadtest.Threshold
	for _, s := range list {
		t, err := loadtest.ParseCompareThreshold(s)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, t)
	}
	return out, nil
}

func countFailed(rs []loadtest.ThresholdResult) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

func compareTargets(list string, replicas int) ([]compare.Target, error) {
	var out []compare.Target
	for _, name := range splitList(list) {
		switch name {
		case "none", "redis", "local", "tiered", "static":
			out = append(out, compare.Target{Name: name, Mode: name, Replicas: replicas})
		default:
			return nil, usagef("unknown configuration %q (none, redis, local, tiered, static)", name)
		}
	}
	return out, nil
}

// writeCompareOuts writes summary=FILE (the figures of every configuration,
// see [compare.Report]) and html=FILE (the report of [reportRow]).
func writeCompareOuts(res *compare.Result, outs []string) error {
	for _, o := range outs {
		kind, path, _ := strings.Cut(o, "=")
		switch kind {
		case "summary":
			if err := res.WriteJSONFile(path); err != nil {
				return err
			}
		case "html":
			if err := loadtest.WriteHTMLFile(path, reportRow(res).Summary); err != nil {
				return err
			}
		default:
			return usagef("bad -out %q: want summary=FILE or html=FILE", o)
		}
	}
	return nil
}

// reportRow is the row a single-run report of a comparison describes: the
// tiered configuration's, or the last one's.
func reportRow(res *compare.Result) compare.Row {
	row := res.Rows[len(res.Rows)-1]
	for _, r := range res.Rows {
		if r.Name == "tiered" {
			row = r
		}
	}
	return row
}

// staticCmd serves fixed bytes until interrupted.
func staticCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("static", stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	productFile := fs.String("product-file", "", "file with the product JSON to serve")
	listFile := fs.String("list-file", "", "file with the list page JSON to serve")
	etag := fs.String("etag", "", "ETag to send with the product")
	cacheStatus := fs.String("cache-status", "", "Cache-Status to send with the product (productsd-l1; hit: the same bytes as an L1 hit)")
	from := fs.String("from", "", "copy the bytes from this product URL instead (http://host/products/ID)")
	metrics := fs.Bool("metrics", false, "serve this process's CPU and memory (Prometheus process collector) on /metrics")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	srv, err := staticServer(ctx, *productFile, *listFile, *etag, *from)
	if err != nil {
		return err
	}
	if *cacheStatus != "" {
		srv.CacheStatus = *cacheStatus
	}
	if *metrics {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		srv.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := httpserver.New(srv, nil) // productsd's own settings: the same connection handling
	fmt.Fprintf(stdout, "loadtest static listening on http://%s\n", l.Addr())
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func staticServer(ctx context.Context, productFile, listFile, etag, from string) (*compare.StaticServer, error) {
	if from != "" {
		base, id, ok := strings.Cut(from, "/products/")
		if !ok || id == "" {
			return nil, usagef("-from wants a product URL, http://host/products/ID")
		}
		return compare.FetchStatic(ctx, http.DefaultClient, base, id)
	}
	if productFile == "" {
		return nil, usagef("give -product-file or -from")
	}
	product, err := os.ReadFile(productFile)
	if err != nil {
		return nil, err
	}
	srv := &compare.StaticServer{Product: product, ETag: etag}
	if listFile != "" {
		if srv.List, err = os.ReadFile(listFile); err != nil {
			return nil, err
		}
	}
	return srv, nil
}

// chaosCmd: faults phase by phase against a private cluster.
func chaosCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chaos", stderr)
	binary := fs.String("productsd", "bin/productsd", "the productsd binary")
	dbURL := fs.String("database-url", envOr(getenv, "DATABASE_URL", defaultDatabaseURL), "PostgreSQL server to make the run's database on ($DATABASE_URL)")
	replicas := fs.Int("replicas", 3, "productsd replicas")
	phase := fs.Duration("phase", 20*time.Second, "length of each phase")
	phases := fs.String("phases", strings.Join(chaos.PhaseNames(), ","), "phases to run, in order")
	products := fs.Int("products", 2000, "products in the key space")
	vus := fs.Int("vus", 16, "virtual users")
	verbose := fs.Bool("v", false, "show the output of productsd and redis-server")
	progress := fs.Bool("progress", false, "print a line per second during each phase")
	out := fs.String("out", "", "also write the figures as JSON to this file")
	balancer := fs.String("balancer", "none", "haproxy: send replica-kill and replica-term through an haproxy process checking /readyz (rolling restart of every replica, SHUTDOWN_DELAY=2s); none: straight to the replicas")
	haproxy := fs.String("haproxy", "haproxy", "the haproxy binary, for -balancer haproxy")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *balancer == "none" {
		*balancer = ""
	}
	cfg := chaos.Config{
		Binary: *binary, DatabaseURL: *dbURL, Replicas: *replicas, Phase: *phase, Phases: splitList(*phases),
		Products: *products, VUs: *vus, Balancer: *balancer, HAProxy: *haproxy,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "loadtest: "+format+"\n", args...) },
	}
	if *verbose {
		cfg.Output = stderr
	}
	if *progress {
		cfg.Progress = stderr
	}
	res, err := chaos.Run(ctx, cfg)
	if res != nil && len(res.Phases) > 0 {
		res.WriteTable(stdout)
		if *out != "" {
			b, jerr := json.MarshalIndent(res, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*out, append(b, '\n'), 0o644)
			}
			if jerr != nil {
				return jerr
			}
		}
	}
	if errors.Is(err, chaos.ErrBounds) {
		return fmt.Errorf("%w: %w", loadtest.ErrThresholds, err)
	}
	return err
}

// rejectTargets refuses -targets for a command that starts its own
// replicas (demo, compare) rather than ignore it.
func rejectTargets(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "targets" {
			err = usagef("%s starts its own replicas and sends load to them: -targets is not used (to load running replicas: loadtest run -targets URL,...)", fs.Name())
		}
	})
	return err
}
