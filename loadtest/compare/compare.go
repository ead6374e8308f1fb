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
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tiercache/productcache/loadtest"
	"github.com/tiercache/productcache/loadtest/cluster"
	"github.com/tiercache/productcache/products"
)

// Target is one configuration of a comparison.
type Target struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"` // CACHE_MODE, or "static" for the ceiling
	Replicas int    `json:"replicas"`
}

// DefaultTargets are the configurations of DESIGN §6: the database
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
		order := make([]int, len(cfg.Targets))
		for i := range order {
			order[i] = i
			if r%2 == 1 {
				order[i] = len(order) - 1 - i
			}
		}
		for _, i := range order {
			t := cfg.Targets[i]
			if ctx.Err() != nil {
				return res.finish(rows, rounds), ctx.Err()
			}
			if rounds > 1 {
				cfg.Logf("compare: round %d of %d: %s (%s, %d replicas)", r+1, rounds, t.Name, t.Mode, t.Replicas)
			} else {
				cfg.Logf("compare: %s (%s, %d replicas)", t.Name, t.Mode, t.Replicas)
			}
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
	opt.DatabaseURL, opt.RedisURL = cc.DatabaseURL, cc.RedisURL
	return loadtest.Run(ctx, &sc, opt)
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
	opt.RedisURL, opt.CPUDatabaseURL = c.cfg.Cluster.RedisURL, c.cfg.Cluster.DatabaseURL
	return loadtest.Run(ctx, &sc, opt)
}

func (c *comparer) startStatic(ctx context.Context) (string, func(), error) {
	if len(c.cfg.StaticCommand) == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		srv := products.NewHTTPServer(c.static, nil)
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

// WriteTable prints the comparison, then the DESIGN §6 ratios, then the
// thresholds, if any were evaluated.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%-8s %3s %9s %7s %9s %9s %6s %6s %7s %8s %7s %6s | %-31s\n",
		"config", "rep", "req/s", "xstatic", "p50", "p99", "L1", "L2", "origin", "db_q/req", "stale", "failed",
		"CPU µs/req: replicas redis pg total")
	static := r.row("static")
	if len(r.Rounds) > 1 {
		fmt.Fprintf(w, "(%d rounds, the configurations taking turns: each row is the configuration's round with the median req/s, each ratio below the median of the rounds' ratios)\n", len(r.Rounds))
	}
	for _, row := range r.Rows {
		s := row.Summary
		x := "-"
		if static != nil && static.RPS > 0 {
			x = fmt.Sprintf("%.2f", s.RPS/static.RPS)
		}
		dbr := "-"
		if s.DB.Available {
			dbr = fmt.Sprintf("%.4f", s.DB.PerReq)
		}
		stale := "-"
		if s.Consistency.Enabled {
			stale = strconv.FormatInt(s.Consistency.StaleReads, 10)
		}
		l1, l2, origin := "-", "-", "-"
		if c := s.Cache; c.Classified > 0 {
			l1, l2, origin = pct1(c.L1), pct1(c.L2), pct1(c.Origin)
		}
		total := "-"
		if s.CPU.Complete {
			total = fmt.Sprintf("%.1f", s.CPU.TotalUSPerReq)
		}
		fmt.Fprintf(w, "%-8s %3d %9.0f %7s %9s %9s %6s %6s %7s %8s %7s %5.2f%% | %12s %5s %5s %5s\n",
			row.Name, row.Replicas, s.RPS, x, loadtest.FormatMs(s.Latency.Med), loadtest.FormatMs(s.Latency.P99),
			l1, l2, origin, dbr, stale, 100*s.FailRate,
			cpuCell(s.CPU.Replicas), cpuCell(s.CPU.Redis), cpuCell(s.CPU.Postgres), total)
	}
	for _, row := range r.Rows {
		if p := row.Summary.CPU.Postgres; !p.Measured && p.Note != "" {
			fmt.Fprintf(w, "\nPostgreSQL CPU not measured: %s\n", p.Note)
			break
		}
	}
	for i, rows := range r.Rounds {
		var cells []string
		for _, row := range rows {
			total := "-"
			if row.Summary.CPU.Complete {
				total = fmt.Sprintf("%.1f", row.Summary.CPU.TotalUSPerReq)
			}
			cells = append(cells, fmt.Sprintf("%s %.0f req/s p50 %s CPU %s µs/req", row.Name, row.Summary.RPS, loadtest.FormatMs(row.Summary.Latency.Med), total))
		}
		if i == 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "round %d: %s\n", i+1, strings.Join(cells, "; "))
	}
	if notes := r.designNotes(); len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w, "\nthresholds:")
		for _, t := range r.Thresholds {
			mark := "ok  "
			if !t.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s %s (actual %.4g)\n", mark, t.Threshold, t.Actual)
		}
	}
	fmt.Fprintln(w)
}

func cpuCell(p loadtest.CPUPart) string {
	if !p.Measured {
		return "-"
	}
	return fmt.Sprintf("%.1f", p.USPerReq)
}

// designNotes are the project's target ratios the rows allow, each with
// its target and whether it was met.
func (r *Result) designNotes() []string {
	var notes []string
	for _, d := range r.DesignRatios() {
		mark := "met"
		if !d.Met {
			mark = "missed"
		}
		each := ""
		if len(d.Rounds) > 0 {
			var vs []string
			for _, v := range d.Rounds {
				if v == nil {
					vs = append(vs, "-")
				} else {
					vs = append(vs, fmt.Sprintf("%.2f", *v))
				}
			}
			each = ", median of rounds " + strings.Join(vs, " ")
		}
		notes = append(notes, fmt.Sprintf("tiered/%s %s = %.2f (target %s%s): %s",
			d.Base, strings.TrimSuffix(d.Ratio, "_ratio"), d.Value, d.Target, each, mark))
	}
	return notes
}

// RatioReport is one of the project's target ratios: tiered against
// another configuration.
type RatioReport struct {
	Ratio  string     `json:"ratio"` // rps_ratio, cpu_ratio or p50_ratio
	Config string     `json:"config"`
	Base   string     `json:"base"`
	Value  float64    `json:"value"`            // of several rounds, the median of Rounds
	Rounds []*float64 `json:"rounds,omitempty"` // each round's, null where it could not be had
	Target string     `json:"target"`           // for example ">= 0.95"
	Met    bool       `json:"met"`
}

// DesignRatios returns the project's target ratios that the rows allow:
// tiered's throughput at least 0.95x static, 2x redis and 3.5x none; its
// CPU per request at most 0.6x redis's and 0.3x none's; its p50 at most
// a third of redis's.
func (r *Result) DesignRatios() []RatioReport {
	var out []RatioReport
	for _, c := range []struct {
		metric, base, op string
		target           float64
	}{
		{"rps_ratio", "static", ">=", 0.95}, {"rps_ratio", "redis", ">=", 2}, {"rps_ratio", "none", ">=", 3.5},
		{"cpu_ratio", "redis", "<=", 0.6}, {"cpu_ratio", "none", "<=", 0.3}, {"p50_ratio", "redis", "<=", 1.0 / 3},
	} {
		v, each := r.ratioRounds(c.metric, "tiered", c.base)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		met := v >= c.target
		if c.op == "<=" {
			met = v <= c.target
		}
		d := RatioReport{Ratio: c.metric, Config: "tiered", Base: c.base, Value: v,
			Target: fmt.Sprintf("%s %.2f", c.op, c.target), Met: met}
		for _, e := range each {
			if math.IsNaN(e) || math.IsInf(e, 0) {
				d.Rounds = append(d.Rounds, nil)
			} else {
				d.Rounds = append(d.Rounds, &e)
			}
		}
		out = append(out, d)
	}
	return out
}

func pct1(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
