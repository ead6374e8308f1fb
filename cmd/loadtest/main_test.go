package main

import (
	"bytes"
	"errors"
	"flag"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest"
	"github.com/tiercache/productcache/loadtest/compare"
)

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{loadtest.ErrThresholds, 99},
		{usagef("bad"), 2},
		{errors.New("boom"), 1},
		{flag.ErrHelp, 0},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err, io.Discard); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, args := range [][]string{
		{"loadtest"},
		{"loadtest", "fly"},
		{"loadtest", "run"}, // no targets
		{"loadtest", "run", "-targets", "http://127.0.0.1:1", "-mix", "get=x"},
		{"loadtest", "run", "-targets", "http://127.0.0.1:1", "-mix", "batch=1", "-batch-size", "101"}, // the API takes 100
		{"loadtest", "run", "-targets", "http://127.0.0.1:1", "-threshold", "latency<5"},
		{"loadtest", "run", "-targets", "http://127.0.0.1:1", "-out", "xml=f"},
		{"loadtest", "run", "-targets", "http://127.0.0.1:1", "-out", "json=f", "-out", "json=g"}, // one stream
		{"loadtest", "compare", "-out", "json=f"},                                                 // many configurations, one stream
		{"loadtest", "run", "-targets", "ftp://x"},
		{"loadtest", "compare", "-configs", "none,memcached"},
		{"loadtest", "demo", "-targets", "http://127.0.0.1:1"},       // starts its own replicas
		{"loadtest", "compare", "-targets", "http://127.0.0.1:1"},    // idem
		{"loadtest", "compare", "-quiet"},                            // compare always prints its table
		{"loadtest", "compare", "-redis-url", "redis://127.0.0.1:1"}, // the replicas use a private redis-server
		{"loadtest", "compare", "-rounds", "0"},
		{"loadtest", "compare", "-configs", "tiered@REDIS_MIN_REPLICAS_ACK"}, // not KEY=VALUE
		{"loadtest", "compare", "-redis-replica", "-private-redis=false"},    // a replica of what
		{"loadtest", "chaos", "-out", "html=f"},                              // chaos writes its JSON only
	} {
		var stderr bytes.Buffer
		err := run(t.Context(), args, getenv, io.Discard, &stderr)
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, code, err)
		}
	}
}

func TestScenarioFromFileAndFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.yaml")
	yaml := `
name: from-file
targets: [http://127.0.0.1:9001, http://127.0.0.1:9002/]
executor: constant-arrival-rate
rate: 500
duration: 20s
max_vus: 50
keys: {distribution: hotspot, hot_keys: 0.1, hot_traffic: 0.9}
mix: {get: 85, update: 5, batch: 10}
batch_size: 30
probe: {enabled: true, grace: 100ms}
thresholds:
  http_req_duration: ["p(99)<5ms"]
  'cache_hit_ratio{tier="l1"}': [">0.9"]
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var f scenarioFlags
	f.register(fs)
	name, err := parseArgs(fs, []string{file, "-duration", "5s", "-threshold", "stale_reads==0", "-stages", "1s:5"})
	if err != nil || name != file {
		t.Fatalf("parseArgs = %q, %v", name, err)
	}
	sc, err := f.scenario(fs, name, loadtest.DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	sc.Executor = loadtest.ConstantArrivalRate // -stages switched it; switch back to check the rest
	if err := sc.Normalize(); err != nil {
		t.Fatal(err)
	}
	if sc.Name != "from-file" || sc.Rate != 500 || time.Duration(sc.Duration) != 5*time.Second || sc.MaxVUs != 50 ||
		sc.Keys.Distribution != "hotspot" || sc.Mix.Update != 5 || sc.Mix.Batch != 10 || sc.BatchSize != 30 ||
		time.Duration(sc.Probe.Grace) != 100*time.Millisecond {
		t.Errorf("scenario %+v", sc)
	}
	if sc.Targets[1] != "http://127.0.0.1:9002" {
		t.Errorf("target not trimmed: %q", sc.Targets[1])
	}
	want := map[string][]string{
		"http_req_duration":          {"p(99)<5ms"},
		`cache_hit_ratio{tier="l1"}`: {">0.9"},
		"stale_reads":                {"==0"},
	}
	if !reflect.DeepEqual(sc.Thresholds, want) {
		t.Errorf("thresholds %v, want %v", sc.Thresholds, want)
	}
	if len(sc.Stages) != 1 || sc.Stages[0].Target != 5 {
		t.Errorf("stages %v", sc.Stages)
	}
}

func TestParseMixAndStages(t *testing.T) {
	m, err := parseMix("get=90, list=2,update=6,create=1,delete=1,batch=10")
	if err != nil || m != (loadtest.Mix{Get: 90, List: 2, Update: 6, Create: 1, Delete: 1, Batch: 10}) {
		t.Errorf("parseMix = %+v, %v", m, err)
	}
	if _, err := parseMix("bulk=1"); err == nil || !strings.Contains(err.Error(), "batch") {
		t.Errorf("parseMix(bulk=1) = %v, want an error listing the types", err)
	}
	st, err := parseStages("5s:20,10s:20,5s:0")
	if err != nil || len(st) != 3 || time.Duration(st[1].Duration) != 10*time.Second || st[2].Target != 0 {
		t.Errorf("parseStages = %+v, %v", st, err)
	}
	if _, err := parseStages("5s"); err == nil {
		t.Error("parseStages accepted a stage without a target")
	}
}

func TestBatchSizeFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var f scenarioFlags
	f.register(fs)
	if _, err := parseArgs(fs, []string{"-mix", "get=80,batch=10,update=10", "-batch-size", "40"}); err != nil {
		t.Fatal(err)
	}
	sc, err := f.scenario(fs, "", loadtest.DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	sc.Targets = []string{"http://127.0.0.1:1"}
	if err := sc.Normalize(); err != nil {
		t.Fatal(err)
	}
	if sc.BatchSize != 40 || sc.Mix != (loadtest.Mix{Get: 80, Batch: 10, Update: 10}) {
		t.Errorf("batch size %d, mix %+v; want 40 and get=80,batch=10,update=10", sc.BatchSize, sc.Mix)
	}
	def := loadtest.DefaultScenario()
	def.Targets = sc.Targets
	if err := def.Normalize(); err != nil || def.BatchSize != 20 {
		t.Errorf("default batch size %d (%v), want 20", def.BatchSize, err)
	}
}

// TestClusterCommandsRejectUnusedFlags: demo and compare refuse a flag they
// would ignore, naming it, and take it where they use it (-redis-url with
// -private-redis=false).
func TestClusterCommandsRejectUnusedFlags(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tt := range []struct {
		cmd  string
		args []string
		flag string // "" when accepted
	}{
		{"demo", []string{"-targets", "http://127.0.0.1:1"}, "-targets"},
		{"compare", []string{"-targets", "http://127.0.0.1:1"}, "-targets"},
		{"compare", []string{"-quiet"}, "-quiet"},
		{"compare", []string{"-redis-url", "redis://127.0.0.1:1"}, "-redis-url"},
		{"compare", []string{"-redis-url", "redis://127.0.0.1:1", "-private-redis=false"}, ""},
		{"compare", []string{"-private-redis=false", "-threshold", "rps_ratio{config:tiered,base:redis} >= 2"}, ""},
	} {
		cc := newClusterCmd(tt.cmd, getenv, io.Discard)
		configs := cc.fs.String("configs", "tiered", "")
		private := cc.fs.Bool("private-redis", true, "")
		file, err := cc.parse(tt.args)
		if err == nil && tt.cmd == "compare" {
			var cfg compare.Config
			cfg, _, err = cc.compareConfig(file, *configs, 1, *private)
			if err == nil && cfg.Cluster.RedisURL != "redis://127.0.0.1:1" && slices.Contains(tt.args, "-redis-url") {
				t.Errorf("%s %v: the replicas' Redis is %q", tt.cmd, tt.args, cfg.Cluster.RedisURL)
			}
		}
		switch {
		case tt.flag == "" && err != nil:
			t.Errorf("%s %v: %v", tt.cmd, tt.args, err)
		case tt.flag != "" && (err == nil || !strings.Contains(err.Error(), tt.flag) || exitCode(err, io.Discard) != 2):
			t.Errorf("%s %v: %v, want a usage error naming %s", tt.cmd, tt.args, err, tt.flag)
		}
	}
}

// TestPackageCommentListsEveryCommand: the package comment and the usage
// text name every command that has a -h (commandUsage).
func TestPackageCommentListsEveryCommand(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	for name := range commandUsage {
		if !strings.Contains(doc, "loadtest "+name+" ") {
			t.Errorf("the package comment does not list %q:\n%s", name, doc)
		}
		if !strings.Contains(usage, "\n  "+name+" ") {
			t.Errorf("the usage text does not list %q", name)
		}
	}
}

// TestCompareTargetsWithEnv: MODE@KEY=VALUE gives one configuration's
// replicas settings of their own, and names it.
func TestCompareTargetsWithEnv(t *testing.T) {
	got, err := compareTargets("tiered@REDIS_MIN_REPLICAS_ACK=0,tiered@REDIS_MIN_REPLICAS_ACK=1@REDIS_WAIT_TIMEOUT=5ms,none", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Mode != "tiered" || got[0].Name != "tiered@REDIS_MIN_REPLICAS_ACK=0" ||
		!slices.Equal(got[1].Env, []string{"REDIS_MIN_REPLICAS_ACK=1", "REDIS_WAIT_TIMEOUT=5ms"}) ||
		got[2].Mode != "none" || len(got[2].Env) != 0 || got[2].Replicas != 2 {
		t.Fatalf("got %+v", got)
	}
}
