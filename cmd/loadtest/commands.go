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
	"chaos":   "loadtest chaos [flags]\n\nStarts a private redis-server (DEBUG allowed), a fresh database and -replicas tiered\nproductsd replicas (the last one reaches Redis through a proxy), then runs the default\nscenario once per phase while injecting that phase's fault, and prints a table.\nThe sentinel-failover phase (in the default list, the last) runs on a topology of its own:\na master, a replica whose replication link it cuts, one sentinel (redis-server --sentinel;\nthe phase is skipped where redis-server is not installed, and broken where it does not start) and the replicas restarted in\nREDIS_MODE sentinel; it lasts at least 15 s whatever -phase says.\nExit status 99 when a phase broke its bound.",
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
	sum, err := f.run(ctx, sc, opt)
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

// clusterCmd is what demo and compare share: the scenario and cluster
// flags, the scenario they build, and the run's database.
type clusterCmd struct {
	fs     *flag.FlagSet
	f      scenarioFlags
	c      clusterFlags
	stderr io.Writer
}

func newClusterCmd(name string, getenv func(string) string, stderr io.Writer) *clusterCmd {
	cc := &clusterCmd{fs: newFlagSet(name, stderr), stderr: stderr}
	cc.f.register(cc.fs)
	cc.c.register(cc.fs, getenv)
	return cc
}

// parse parses the command line and refuses -targets: the command starts
// its own replicas.
func (cc *clusterCmd) parse(args []string) (string, error) {
	file, err := parseArgs(cc.fs, args)
	if err != nil {
		return "", err
	}
	return file, rejectTargets(cc.fs)
}

// scenario builds the scenario from file (or base) and the flags, checks
// -out before minutes of load, and normalizes it with a placeholder target
// that the replicas replace.
func (cc *clusterCmd) scenario(file string, base loadtest.Scenario) (*loadtest.Scenario, error) {
	sc, err := cc.f.scenario(cc.fs, file, base)
	if err != nil {
		return nil, err
	}
	if err := cc.f.validateOuts(); err != nil {
		return nil, err
	}
	sc.Targets = []string{"http://placeholder"}
	if err := sc.Normalize(); err != nil {
		return nil, usageError{err}
	}
	return sc, nil
}

// prepare makes the run's database, or takes -database-url with
// -fresh-db=false, and names the run's Redis namespace. drop removes the
// database when it was made for the run.
func (cc *clusterCmd) prepare(ctx context.Context) (dbURL, ns string, drop func(), err error) {
	if dbURL, drop, err = cc.c.database(ctx, cc.stderr); err != nil {
		return "", "", nil, err
	}
	if cc.c.netLatency > 0 {
		fmt.Fprintf(cc.stderr, "loadtest: the replicas reach Redis and PostgreSQL through proxies adding %v each way\n", cc.c.netLatency)
	}
	return dbURL, fmt.Sprintf("loadtest-%s-%d", strings.TrimPrefix(cc.fs.Name(), "loadtest "), time.Now().UnixNano()), drop, nil
}

// demoCmd: start replicas, seed, run the default scenario, stop.
func demoCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cc := newClusterCmd("demo", getenv, stderr)
	mode := cc.fs.String("mode", "tiered", "CACHE_MODE of the replicas")
	file, err := cc.parse(args)
	if err != nil {
		return err
	}
	sc, err := cc.scenario(file, loadtest.DefaultScenario())
	if err != nil {
		return err
	}
	dbURL, ns, drop, err := cc.prepare(ctx)
	if err != nil {
		return err
	}
	defer drop()
	defer cc.c.cleanRedis(ns, stderr)
	opt := cc.f.runOptions(stderr)
	cpu := meter.NewCPU(ctx, cc.c.redisURL, dbURL)
	defer cpu.Close()
	opt.CPU, opt.Stored = cpu, meter.StoredVersions(dbURL)
	if opt.Seed, err = cc.c.migrate(ctx, dbURL, ns, sc.Setup.Products, stderr); err != nil {
		return err
	}
	replicaDB, replicaRedis, closeNetwork, err := cc.c.network(dbURL)
	if err != nil {
		return err
	}
	defer closeNetwork()
	cl, err := cluster.StartCluster(ctx, cluster.Config{
		Binary: cc.c.binary, DatabaseURL: replicaDB, RedisURL: replicaRedis, Mode: *mode,
		Replicas: cc.c.replicas, Namespace: ns, Output: cc.c.output(stderr), Env: cc.c.env,
	})
	if err != nil {
		return err
	}
	defer cl.Stop()
	fmt.Fprintf(stderr, "loadtest: %d %s replicas: %s\n", cc.c.replicas, *mode, strings.Join(cl.URLs(), " "))
	opt.Targets = cl.URLs()
	sum, err := cc.f.run(ctx, sc, opt)
	if err != nil {
		return err
	}
	return cc.f.report(sum, stdout)
}

// migrate migrates the database and, when it was made for this run, seeds
// n products; otherwise it returns the seeding for the run to make the
// products that are missing.
func (c *clusterFlags) migrate(ctx context.Context, dbURL, ns string, n int, stderr io.Writer) (func(context.Context, int) error, error) {
	fmt.Fprintf(stderr, "loadtest: migrating and seeding %d products\n", n)
	if err := cluster.Migrate(ctx, c.binary, dbURL, nil); err != nil {
		return nil, err
	}
	seedEnv := []string{"CACHE_NAMESPACE=" + ns, "REDIS_URL=" + c.redisURL}
	seed := func(ctx context.Context, n int) error { return cluster.Seed(ctx, c.binary, dbURL, n, nil, seedEnv...) }
	if !c.freshDB {
		return seed, nil
	}
	return nil, seed(ctx, n)
}

// network returns the database and Redis URLs the replicas use: through
// proxies adding -net-latency each way, or the servers themselves.
func (c *clusterFlags) network(dbURL string) (replicaDB, replicaRedis string, closeFn func(), err error) {
	if c.netLatency <= 0 {
		return dbURL, c.redisURL, func() {}, nil
	}
	nw, err := cluster.NewNetwork(c.redisURL, dbURL, c.netLatency)
	if err != nil {
		return "", "", nil, err
	}
	return nw.DatabaseURL(), nw.RedisURL(), func() { nw.Close() }, nil
}

// compareCmd: the same scenario against each configuration.
func compareCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cc := newClusterCmd("compare", getenv, stderr)
	configs := cc.fs.String("configs", "none,redis,local,tiered,static", "configurations, in order (none, redis, local, tiered, static); MODE@KEY=VALUE[@KEY=VALUE...] adds to that configuration's replicas' environment, e.g. tiered@REDIS_MIN_REPLICAS_ACK=1")
	inProcess := cc.fs.Bool("static-in-process", false, "serve the static ceiling from this process instead of child processes (its CPU is then not measured)")
	rounds := cc.fs.Int("rounds", 1, "run every configuration this many times, taking turns (round 2 in reverse order); rows and ratios are then medians")
	privateRedis := cc.fs.Bool("private-redis", true, "run the replicas against a redis-server of their own, so that its CPU time is theirs alone (-private-redis=false: -redis-url)")
	redisReplica := cc.fs.Bool("redis-replica", false, "give the private redis-server a replica (another redis-server replicating from it), for WAIT (REDIS_MIN_REPLICAS_ACK)")
	file, err := cc.parse(args)
	if err != nil {
		return err
	}
	cfg, thresholds, err := cc.compareConfig(file, *configs, *rounds, *privateRedis)
	if err != nil {
		return err
	}
	if *redisReplica && !*privateRedis {
		return usagef("-redis-replica needs -private-redis")
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.StaticCommand = []string{exe, "static", "-metrics"}
	}
	dbURL, prefix, drop, err := cc.prepare(ctx)
	if err != nil {
		return err
	}
	defer drop()
	cfg.NamespacePrefix, cfg.Cluster.DatabaseURL = prefix, dbURL
	if *privateRedis {
		stop, err := cc.c.privateRedis(ctx, *redisReplica, stderr)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Cluster.RedisURL = cc.c.redisURL
	} else {
		defer cc.c.cleanRedis(prefix, stderr)
		fmt.Fprintf(stderr, "loadtest: cache namespaces %s-<config>-*\n", prefix)
	}
	res, err := compare.Compare(ctx, cfg)
	return cc.f.reportComparison(res, err, thresholds, stdout)
}

// compareConfig checks compare's flags and builds its configuration, all
// but the database and Redis namespace. -threshold is compare's own (a
// ratio between configurations, not the scenario's), -quiet is refused (the
// table is what compare prints) and so is -redis-url with -private-redis.
func (cc *clusterCmd) compareConfig(file, configs string, rounds int, privateRedis bool) (compare.Config, []loadtest.Threshold, error) {
	unused := map[string]string{"quiet": "compare prints its table, not a run's summary"}
	for _, o := range cc.f.outs {
		if strings.HasPrefix(o, "json=") {
			return compare.Config{}, nil, usagef("-out json=: compare runs many configurations; stream one with loadtest run or demo")
		}
	}
	if privateRedis {
		unused["redis-url"] = "the replicas use a private redis-server (-private-redis=false uses -redis-url)"
	}
	if err := rejectFlags(cc.fs, unused); err != nil {
		return compare.Config{}, nil, err
	}
	thresholds, err := compareThresholds(cc.f.thresholds)
	if err != nil {
		return compare.Config{}, nil, err
	}
	cc.f.thresholds = nil // a comparison's thresholds are its own, not the scenario's
	base := loadtest.DefaultScenario()
	base.Duration = loadtest.Duration(8 * time.Second)
	base.Warmup = loadtest.Duration(3 * time.Second)
	sc, err := cc.scenario(file, base)
	if err != nil {
		return compare.Config{}, nil, err
	}
	targets, err := compareTargets(configs, cc.c.replicas)
	if err != nil {
		return compare.Config{}, nil, err
	}
	if rounds < 1 {
		return compare.Config{}, nil, usagef("-rounds must be at least 1, got %d", rounds)
	}
	return compare.Config{
		Scenario:   *sc,
		Cluster:    cluster.Config{Binary: cc.c.binary, RedisURL: cc.c.redisURL, Output: cc.c.output(cc.stderr), Env: cc.c.env},
		Targets:    targets,
		Run:        cc.f.runOptions(cc.stderr),
		NetLatency: cc.c.netLatency,
		Rounds:     rounds,
		Logf:       stderrLogf(cc.stderr),
	}, thresholds, nil
}

// reportComparison prints the table of what ran, writes the -out and
// -summary-export files and turns failed thresholds into
// loadtest.ErrThresholds.
func (f *scenarioFlags) reportComparison(res *compare.Result, err error, thresholds []loadtest.Threshold, stdout io.Writer) error {
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

// privateRedis starts the replicas' own redis-server (and, with replica,
// one replicating from it) and points c at it; stop stops them.
func (c *clusterFlags) privateRedis(ctx context.Context, replica bool, stderr io.Writer) (stop func(), err error) {
	rs, err := cluster.StartRedis(ctx, c.output(stderr))
	if err != nil {
		return nil, fmt.Errorf("%w (or run with -private-redis=false)", err)
	}
	c.redisURL = rs.URL()
	fmt.Fprintf(stderr, "loadtest: a private redis-server on %s\n", rs.Addr())
	if !replica {
		return rs.Stop, nil
	}
	rr, err := cluster.StartRedisReplica(ctx, c.output(stderr), rs)
	if err != nil {
		rs.Stop()
		return nil, err
	}
	fmt.Fprintf(stderr, "loadtest: its replica on %s\n", rr.Addr())
	return func() { rr.Stop(); rs.Stop() }, nil
}

// compareTargets parses -configs: each a mode, optionally followed by
// @KEY=VALUE settings for its replicas; the whole entry names it.
func compareTargets(list string, replicas int) ([]compare.Target, error) {
	var out []compare.Target
	for _, name := range splitList(list) {
		parts := strings.Split(name, "@")
		switch parts[0] {
		case "none", "redis", "local", "tiered", "static":
		default:
			return nil, usagef("unknown configuration %q (none, redis, local, tiered, static)", name)
		}
		for _, kv := range parts[1:] {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return nil, usagef("configuration %q: %q is not KEY=VALUE", name, kv)
			}
		}
		out = append(out, compare.Target{Name: name, Mode: parts[0], Replicas: replicas, Env: parts[1:]})
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
	phase := fs.Duration("phase", 20*time.Second, "length of each phase (sentinel-failover: at least 15s)")
	phases := fs.String("phases", strings.Join(chaos.PhaseNames(), ","), "phases to run, in order")
	products := fs.Int("products", 2000, "products in the key space")
	vus := fs.Int("vus", 16, "virtual users")
	verbose := fs.Bool("v", false, "show the output of productsd and redis-server")
	progress := fs.Bool("progress", false, "print a line per second during each phase")
	out := fs.String("out", "", "also write the figures as JSON to this file (summary=FILE, as run and compare take it, or FILE)")
	balancer := fs.String("balancer", "none", "haproxy: send replica-kill and replica-term through an haproxy process checking /readyz (rolling restart of every replica, SHUTDOWN_DELAY=2s); none: straight to the replicas")
	haproxy := fs.String("haproxy", "haproxy", "the haproxy binary, for -balancer haproxy")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *balancer == "none" {
		*balancer = ""
	}
	if kind, file, ok := strings.Cut(*out, "="); ok {
		if kind != "summary" || file == "" {
			return usagef("-out %q: chaos writes one output, summary=FILE (or FILE)", *out)
		}
		*out = file
	}
	cfg := chaos.Config{
		Binary: *binary, DatabaseURL: *dbURL, Replicas: *replicas, Phase: *phase, Phases: splitList(*phases),
		Products: *products, VUs: *vus, Balancer: *balancer, HAProxy: *haproxy,
		Logf: stderrLogf(stderr),
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
	return rejectFlags(fs, map[string]string{
		"targets": "it starts its own replicas and sends load to them (to load running replicas: loadtest run -targets URL,...)",
	})
}

// rejectFlags refuses each flag of unused that the command line set, with
// why the command does not use it, rather than ignore it.
func rejectFlags(fs *flag.FlagSet, unused map[string]string) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if why, ok := unused[fl.Name]; ok && err == nil {
			err = usagef("%s does not use -%s: %s", fs.Name(), fl.Name, why)
		}
	})
	return err
}

// stderrLogf logs a line to stderr after "loadtest: ".
func stderrLogf(stderr io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) { fmt.Fprintf(stderr, "loadtest: "+format+"\n", args...) }
}
