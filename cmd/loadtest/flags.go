package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tiercache/productcache/loadtest"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// scenarioFlags are the flags that build or override a scenario; every
// command that runs a scenario has them.
type scenarioFlags struct {
	name, targets, executor, stages, keys, mix, balance string
	vus, startVUs, rate, preVUs, maxVUs, products       int
	startRate                                           int
	probeSample, listLimit, batchSize                   int
	duration, timeUnit, grace, timeout, warmup          time.Duration
	staleIfError                                        time.Duration
	zipfS, hotKeys, hotTraffic, staleIfErrorShare       float64
	probe                                               bool
	seed                                                uint64
	maxRequests                                         int64
	thresholds, outs                                    listFlag
	summaryExport                                       string
	progress, quiet                                     bool
}

func (f *scenarioFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "scenario name")
	fs.StringVar(&f.targets, "targets", "", "comma-separated base URLs, one per replica")
	fs.StringVar(&f.balance, "balance", "", "how a request picks its target: round-robin or random")
	fs.StringVar(&f.executor, "executor", "", "constant-vus, ramping-vus, constant-arrival-rate or ramping-arrival-rate")
	fs.IntVar(&f.vus, "vus", 0, "VUs (constant-vus)")
	fs.DurationVar(&f.duration, "duration", 0, "test duration (constant-vus, constant-arrival-rate)")
	fs.StringVar(&f.stages, "stages", "", "ramping stages, duration:target, e.g. 5s:20,10s:20,5s:0 (VUs; iterations per -time-unit with -executor ramping-arrival-rate)")
	fs.IntVar(&f.startRate, "start-rate", 0, "iterations per -time-unit at the start (ramping-arrival-rate)")
	fs.IntVar(&f.startVUs, "start-vus", 0, "VUs at the start (ramping-vus)")
	fs.IntVar(&f.rate, "rate", 0, "iterations per -time-unit (constant-arrival-rate)")
	fs.DurationVar(&f.timeUnit, "time-unit", 0, "time unit of -rate (default 1s)")
	fs.IntVar(&f.preVUs, "pre-allocated-vus", 0, "VUs allocated up front (constant-arrival-rate)")
	fs.IntVar(&f.maxVUs, "max-vus", 0, "most VUs (constant-arrival-rate); arrivals beyond are dropped")
	fs.IntVar(&f.products, "products", 0, "key space: products that must exist")
	fs.StringVar(&f.keys, "keys", "", "key distribution: uniform, zipf or hotspot")
	fs.Float64Var(&f.zipfS, "zipf-s", 0, "Zipf exponent s (> 0)")
	fs.Float64Var(&f.hotKeys, "hot-keys", 0, "hotspot: fraction of keys that are hot")
	fs.Float64Var(&f.hotTraffic, "hot-traffic", 0, "hotspot: fraction of requests to hot keys")
	fs.StringVar(&f.mix, "mix", "", "request mix weights, e.g. get=90,list=2,update=6,create=1,delete=1 (batch=N: GET /products?ids= with -batch-size ids)")
	fs.BoolVar(&f.probe, "probe", false, "run the consistency probe (on in the default scenario; -probe=false turns it off)")
	fs.IntVar(&f.probeSample, "probe-sample", 0, "ids the probe tracks (the most popular)")
	fs.DurationVar(&f.grace, "grace", 0, "probe grace window after a write's acknowledgement (default 50ms)")
	fs.Var(&f.thresholds, "threshold", "threshold in k6 syntax, e.g. 'http_req_duration: p(99)<5ms' (repeatable)")
	fs.Uint64Var(&f.seed, "seed", 0, "RNG seed")
	fs.DurationVar(&f.timeout, "timeout", 0, "per-request timeout (default 10s)")
	fs.DurationVar(&f.warmup, "warmup", 0, "run the workload this long first, unmeasured (compare: default 3s)")
	fs.IntVar(&f.listLimit, "list-limit", 0, "page size of list requests")
	fs.IntVar(&f.batchSize, "batch-size", 0, "distinct ids per batch read, drawn from the key distribution (default 20, at most 100)")
	fs.DurationVar(&f.staleIfError, "stale-if-error", 0, "get and batch reads send Cache-Control: stale-if-error=<this, whole seconds>; their labelled stale answers are counted apart (default: none)")
	fs.Float64Var(&f.staleIfErrorShare, "stale-if-error-share", 0, "share of get and batch reads that send -stale-if-error (default 1)")
	fs.Int64Var(&f.maxRequests, "max-requests", 0, "stop after this many requests")
	fs.Var(&f.outs, "out", "output: summary=FILE (the summary as JSON), html=FILE (the report) or json=FILE (k6's --out json stream: a point per metric per request) (repeatable)")
	fs.StringVar(&f.summaryExport, "summary-export", "", "write the end-of-test summary to FILE in k6's --summary-export JSON shape")
	fs.BoolVar(&f.progress, "progress", false, "print progress on stderr even when it is not a terminal")
	fs.BoolVar(&f.quiet, "quiet", false, "no end-of-test summary on stdout")
}

// parseArgs parses flags that may come before and after one positional
// argument (the scenario file), which it returns.
func parseArgs(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", usageError{err}
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	file := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", usageError{err}
	}
	if fs.NArg() > 0 {
		return "", usagef("unexpected arguments %q", fs.Args())
	}
	return file, nil
}

// scenario loads file (or starts from base) and applies the flags that
// were set.
func (f *scenarioFlags) scenario(fs *flag.FlagSet, file string, base loadtest.Scenario) (*loadtest.Scenario, error) {
	sc := &base
	if file != "" {
		var err error
		if sc, err = loadtest.LoadScenario(file); err != nil {
			return nil, usageError{err}
		}
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if err == nil {
			err = f.apply(sc, fl.Name)
		}
	})
	if err != nil {
		return nil, usageError{err}
	}
	return sc, nil
}

func (f *scenarioFlags) apply(sc *loadtest.Scenario, name string) error {
	d := func(v time.Duration) loadtest.Duration { return loadtest.Duration(v) }
	switch name {
	case "name":
		sc.Name = f.name
	case "targets":
		sc.Targets = splitList(f.targets)
	case "balance":
		sc.Balance = f.balance
	case "executor":
		sc.Executor = f.executor
	case "vus":
		sc.VUs = f.vus
	case "duration":
		sc.Duration = d(f.duration)
	case "stages":
		st, err := parseStages(f.stages)
		if err != nil {
			return err
		}
		sc.Stages = st
		if sc.Executor != loadtest.RampingArrivalRate {
			sc.Executor = loadtest.RampingVUs
		}
	case "start-vus":
		sc.StartVUs = f.startVUs
	case "rate":
		sc.Rate = f.rate
	case "start-rate":
		sc.StartRate = f.startRate
	case "time-unit":
		sc.TimeUnit = d(f.timeUnit)
	case "pre-allocated-vus":
		sc.PreAllocatedVUs = f.preVUs
	case "max-vus":
		sc.MaxVUs = f.maxVUs
	case "products":
		sc.Setup.Products = f.products
	case "keys":
		sc.Keys.Distribution = f.keys
	case "zipf-s":
		sc.Keys.S = f.zipfS
	case "hot-keys":
		sc.Keys.HotKeys = f.hotKeys
	case "hot-traffic":
		sc.Keys.HotTraffic = f.hotTraffic
	case "mix":
		m, err := parseMix(f.mix)
		if err != nil {
			return err
		}
		sc.Mix = m
	case "probe":
		sc.Probe.Enabled = f.probe
	case "probe-sample":
		sc.Probe.Sample = f.probeSample
	case "grace":
		sc.Probe.Grace = d(f.grace)
	case "threshold":
		return addThresholds(sc, f.thresholds)
	case "seed":
		sc.Seed = f.seed
	case "timeout":
		sc.Timeout = d(f.timeout)
	case "warmup":
		sc.Warmup = d(f.warmup)
	case "list-limit":
		sc.ListLimit = f.listLimit
	case "batch-size":
		sc.BatchSize = f.batchSize
	case "stale-if-error":
		sc.StaleIfError = d(f.staleIfError)
	case "stale-if-error-share":
		sc.StaleIfErrorShare = f.staleIfErrorShare
	case "max-requests":
		sc.MaxRequests = f.maxRequests
	}
	return nil
}

// addThresholds adds "metric: expr" thresholds to the scenario's map.
func addThresholds(sc *loadtest.Scenario, list []string) error {
	m := map[string][]string{}
	for k, v := range sc.Thresholds {
		m[k] = append([]string(nil), v...)
	}
	for _, s := range list {
		t, err := loadtest.ParseThreshold(s)
		if err != nil {
			return err
		}
		metric, expr := splitThreshold(t.Source)
		m[metric] = append(m[metric], expr)
	}
	sc.Thresholds = m
	return nil
}

// splitThreshold splits "metric{tags}: expr" or "metric{tags}expr" at the
// end of the metric and its tags.
func splitThreshold(s string) (string, string) {
	end := strings.IndexFunc(s, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') })
	if end < 0 {
		return s, ""
	}
	if s[end] == '{' {
		if close := strings.IndexByte(s, '}'); close > 0 {
			end = close + 1
		}
	}
	return strings.TrimSpace(s[:end]), strings.TrimLeft(s[end:], ": ")
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseStages reads "5s:20,10s:20,5s:0" (duration:target).
func parseStages(s string) ([]loadtest.Stage, error) {
	var st []loadtest.Stage
	for _, p := range splitList(s) {
		ds, ts, ok := strings.Cut(p, ":")
		d, err1 := time.ParseDuration(ds)
		t, err2 := strconv.Atoi(ts)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad stage %q: want duration:target, e.g. 10s:20", p)
		}
		st = append(st, loadtest.Stage{Duration: loadtest.Duration(d), Target: t})
	}
	return st, nil
}

// parseMix reads "get=90,list=2,update=6,create=1,delete=1,batch=10".
func parseMix(s string) (loadtest.Mix, error) {
	var m loadtest.Mix
	fields := map[string]*float64{"get": &m.Get, "list": &m.List, "create": &m.Create, "update": &m.Update, "delete": &m.Delete, "batch": &m.Batch}
	for _, p := range splitList(s) {
		k, v, ok := strings.Cut(p, "=")
		w, err := strconv.ParseFloat(v, 64)
		dst := fields[strings.TrimSpace(k)]
		if !ok || err != nil || dst == nil || w < 0 {
			return m, fmt.Errorf("bad mix entry %q: want type=weight with type get, list, create, update, delete or batch", p)
		}
		*dst = w
	}
	return m, nil
}

// run runs sc with opt and, for -out json=FILE, streams every request's
// points to FILE as it goes (k6's --out json line format).
func (f *scenarioFlags) run(ctx context.Context, sc *loadtest.Scenario, opt loadtest.RunOptions) (*loadtest.Summary, error) {
	path := ""
	for _, o := range f.outs { // validateOuts allows one json= at most
		if kind, p, _ := strings.Cut(o, "="); kind == "json" {
			path = p
		}
	}
	if path == "" {
		return loadtest.Run(ctx, sc, opt)
	}
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	opt.Points = loadtest.NewPointStream(file, sc.Name)
	sum, err := loadtest.Run(ctx, sc, opt)
	err = errors.Join(err, opt.Points.Close(), file.Close())
	if err != nil {
		return nil, err
	}
	return sum, nil
}

// runOptions decides on the progress line: on when stderr is a terminal or
// -progress is given.
func (f *scenarioFlags) runOptions(stderr io.Writer) loadtest.RunOptions {
	tty := isTerminal(stderr)
	opt := loadtest.RunOptions{Logf: stderrLogf(stderr)}
	for _, o := range f.outs {
		opt.SampleDB = opt.SampleDB || strings.HasPrefix(o, "html=") // the report charts queries over time
	}
	if tty || f.progress {
		opt.Progress, opt.ProgressTTY = stderr, tty
	}
	return opt
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// report prints the summary, writes the -out files and turns failed
// thresholds into loadtest.ErrThresholds.
func (f *scenarioFlags) report(sum *loadtest.Summary, stdout io.Writer) error {
	if !f.quiet {
		sum.WriteText(stdout)
	}
	if f.summaryExport != "" {
		if err := sum.WriteK6SummaryExport(f.summaryExport); err != nil {
			return err
		}
	}
	for _, o := range f.outs {
		kind, path, ok := strings.Cut(o, "=")
		var err error
		switch {
		case !ok || path == "":
			err = usagef("bad -out %q: want summary=FILE, html=FILE or json=FILE", o)
		case kind == "json": // written while the run went (run)
		case kind == "summary":
			err = sum.WriteJSONFile(path)
		case kind == "html":
			err = loadtest.WriteHTMLFile(path, sum)
		default:
			err = usagef("bad -out %q: want summary=FILE, html=FILE or json=FILE", o)
		}
		if err != nil {
			return err
		}
	}
	if !sum.ThresholdsOK {
		failed := 0
		for _, t := range sum.Thresholds {
			if !t.OK {
				failed++
			}
		}
		return fmt.Errorf("%w: %d of %d", loadtest.ErrThresholds, failed, len(sum.Thresholds))
	}
	return nil
}

// validateOuts checks -out before a run, not after minutes of load.
func (f *scenarioFlags) validateOuts() error {
	jsons := 0
	for _, o := range f.outs {
		kind, path, ok := strings.Cut(o, "=")
		if !ok || path == "" || (kind != "summary" && kind != "html" && kind != "json") {
			return usagef("bad -out %q: want summary=FILE, html=FILE or json=FILE", o)
		}
		if kind == "json" {
			if jsons++; jsons > 1 {
				return usagef("one -out json=FILE at most")
			}
		}
	}
	return nil
}

var errNoTargets = errors.New("no targets: give -targets URL[,URL...] or a scenario with targets")
