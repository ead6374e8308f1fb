package loadtest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Executors.
const (
	ConstantVUs         = "constant-vus"
	RampingVUs          = "ramping-vus"
	ConstantArrivalRate = "constant-arrival-rate"
	RampingArrivalRate  = "ramping-arrival-rate"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("10s", "250ms") in JSON and YAML; a bare number means seconds.
type Duration time.Duration

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "10s" or 10 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("loadtest: duration must be a string like \"10s\" or seconds: %s", b)
		}
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Stage is one leg of a ramping scenario: move linearly to Target VUs
// (ramping-vus) or Target iterations per time unit (ramping-arrival-rate)
// over Duration.
type Stage struct {
	Duration Duration `json:"duration"`
	Target   int      `json:"target"`
}

// Mix weighs the request types; weights need not add up to 1. The zero
// value means reads only. Batch is GET /products?ids= with
// [Scenario.BatchSize] distinct ids drawn from the key distribution.
type Mix struct {
	Get    float64 `json:"get,omitempty"`
	List   float64 `json:"list,omitempty"`
	Create float64 `json:"create,omitempty"`
	Update float64 `json:"update,omitempty"`
	Delete float64 `json:"delete,omitempty"`
	Batch  float64 `json:"batch,omitempty"`
}

func (m Mix) weights() [numReqTypes]float64 {
	return [numReqTypes]float64{m.Get, m.List, m.Create, m.Update, m.Delete, m.Batch}
}

// MaxBatchSize is the most ids the API takes in one GET /products?ids=
// (docs/design.md §4).
const MaxBatchSize = 100

// Setup makes sure Products products exist before the run (see
// [RunOptions] for a key space given by the caller, or a faster seed).
type Setup struct {
	// Products is the size of the key space. Default 1000.
	Products int `json:"products,omitempty"`
}

// ProbeSpec configures the consistency probe.
type ProbeSpec struct {
	Enabled bool `json:"enabled,omitempty"`
	// Sample is how many ids are tracked: the most popular ones under the
	// key distribution. Default min(products, 1000).
	Sample int `json:"sample,omitempty"`
	// Grace is the window after an acknowledgement within which an old
	// version is tolerated. Default 50ms.
	Grace Duration `json:"grace,omitempty"`
}

// Scenario is a load test: who to send what to, how hard, for how long,
// and what must hold.
type Scenario struct {
	Name    string   `json:"name,omitempty"`
	Targets []string `json:"targets"`
	// Balance is "round-robin" (default) or "random": how each request
	// picks its target.
	Balance  string `json:"balance,omitempty"`
	Executor string `json:"executor,omitempty"` // default constant-vus

	VUs      int      `json:"vus,omitempty"`      // constant-vus; default 10
	Duration Duration `json:"duration,omitempty"` // constant-vus, constant-arrival-rate; default 10s

	StartVUs int     `json:"startVUs,omitempty"` // ramping-vus
	Stages   []Stage `json:"stages,omitempty"`   // ramping-vus, ramping-arrival-rate

	Rate            int      `json:"rate,omitempty"`            // constant-arrival-rate: iterations per TimeUnit
	StartRate       int      `json:"startRate,omitempty"`       // ramping-arrival-rate: iterations per TimeUnit at the start
	TimeUnit        Duration `json:"timeUnit,omitempty"`        // default 1s
	PreAllocatedVUs int      `json:"preAllocatedVUs,omitempty"` // arrival-rate executors; default 10
	MaxVUs          int      `json:"maxVUs,omitempty"`          // default PreAllocatedVUs

	// Scenarios, when set, are several executors run side by side in one
	// run, as in k6's scenarios block: each by name, with its own executor
	// settings and an optional startTime; the executor fields above are
	// then not used. Everything else (targets, keys, mix, probe,
	// thresholds) is shared, and the summary covers them all; max_requests
	// applies to each scenario.
	Scenarios map[string]ExecSpec `json:"scenarios,omitempty"`

	Keys  KeySpec   `json:"keys,omitempty"`
	Mix   Mix       `json:"mix,omitempty"`
	Setup Setup     `json:"setup,omitempty"`
	Probe ProbeSpec `json:"probe,omitempty"`

	// Thresholds maps a metric (with optional tags) to conditions, as in
	// k6: {"http_req_duration": ["p(99)<5ms"], "stale_reads": ["count==0"]}.
	Thresholds map[string][]string `json:"thresholds,omitempty"`

	// Warmup runs the same workload with constant VUs (vus, or the
	// executor's most VUs) for this long before measuring, and discards
	// its results: caches start cold, and a short run would otherwise
	// measure mostly the cold start.
	Warmup Duration `json:"warmup,omitempty"`

	Timeout   Duration `json:"timeout,omitempty"`    // per request; default 10s
	ListLimit int      `json:"list_limit,omitempty"` // default 50
	// BatchSize is how many distinct ids a batch read asks for (fewer
	// when the key space is smaller); default 20, at most MaxBatchSize.
	BatchSize int `json:"batch_size,omitempty"`
	// StaleIfError, when set (whole seconds, at least 1s), is the
	// allowance a share StaleIfErrorShare (default 1: all) of the get and
	// batch reads opt in with: Cache-Control: stale-if-error=<seconds>
	// (README, fail-safe). Their labelled stale answers are counted apart
	// (Summary.FailSafe), not as stale reads.
	StaleIfError      Duration `json:"stale_if_error,omitempty"`
	StaleIfErrorShare float64  `json:"stale_if_error_share,omitempty"`
	Seed              uint64   `json:"seed,omitempty"` // RNG seed; default 1
	// MaxRequests stops the run after this many iterations (0: no limit).
	MaxRequests int64 `json:"max_requests,omitempty"`
}

// ExecSpec is one named scenario of [Scenario.Scenarios]: an executor and
// its settings, with the same names and defaults as in Scenario, and the
// delay after the run's start at which it begins.
type ExecSpec struct {
	Executor        string   `json:"executor"`
	StartTime       Duration `json:"startTime,omitempty"`
	VUs             int      `json:"vus,omitempty"`
	Duration        Duration `json:"duration,omitempty"`
	StartVUs        int      `json:"startVUs,omitempty"`
	Stages          []Stage  `json:"stages,omitempty"`
	Rate            int      `json:"rate,omitempty"`
	StartRate       int      `json:"startRate,omitempty"`
	TimeUnit        Duration `json:"timeUnit,omitempty"`
	PreAllocatedVUs int      `json:"preAllocatedVUs,omitempty"`
	MaxVUs          int      `json:"maxVUs,omitempty"`
	// GracefulStop and GracefulRampDown are accepted so a k6 scenario
	// runs unchanged, and not used: an iteration here is one request,
	// bounded by timeout.
	GracefulStop     Duration `json:"gracefulStop,omitempty"`
	GracefulRampDown Duration `json:"gracefulRampDown,omitempty"`
}

// Sub is the scenario with the executor settings of its scenario name,
// normalized, and no scenarios of its own.
func (sc *Scenario) Sub(name string) (*Scenario, error) {
	e, ok := sc.Scenarios[name]
	if !ok {
		return nil, fmt.Errorf("loadtest: no scenario %q", name)
	}
	sub := *sc
	sub.Scenarios = nil
	sub.Name = name
	sub.Executor, sub.VUs, sub.Duration, sub.StartVUs, sub.Stages = e.Executor, e.VUs, e.Duration, e.StartVUs, e.Stages
	sub.Rate, sub.StartRate, sub.TimeUnit, sub.PreAllocatedVUs, sub.MaxVUs = e.Rate, e.StartRate, e.TimeUnit, e.PreAllocatedVUs, e.MaxVUs
	sub.Targets = append([]string(nil), sc.Targets...)
	if err := sub.Normalize(); err != nil {
		return nil, fmt.Errorf("loadtest: scenario %q: %w", name, err)
	}
	return &sub, nil
}

// executorText names the executor, or each scenario's.
func (sc *Scenario) executorText() string {
	if len(sc.Scenarios) == 0 {
		return sc.Executor
	}
	var parts []string
	for _, name := range sc.ScenarioNames() {
		parts = append(parts, name+": "+sc.Scenarios[name].Executor)
	}
	return strings.Join(parts, ", ")
}

// ScenarioNames are the names of the scenarios block, in order.
func (sc *Scenario) ScenarioNames() []string {
	names := make([]string, 0, len(sc.Scenarios))
	for n := range sc.Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadScenario reads a scenario from a YAML or JSON file.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	return ParseScenario(b)
}

// ParseScenario parses YAML or JSON (JSON is YAML) and rejects unknown
// fields. The executor settings are spelled as k6 spells them (startTime,
// preAllocatedVUs, maxVUs, timeUnit, startVUs, startRate, gracefulStop), so
// a k6 options object runs unchanged; their snake_case spellings
// (start_time, pre_allocated_vus, ...) are accepted as aliases.
func ParseScenario(b []byte) (*Scenario, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("loadtest: scenario: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("loadtest: scenario: %w", err)
	}
	if err := k6Spelling(doc); err != nil {
		return nil, err
	}
	if scs, ok := doc["scenarios"].(map[string]any); ok {
		for name, e := range scs {
			if m, ok := e.(map[string]any); ok {
				if err := k6Spelling(m); err != nil {
					return nil, fmt.Errorf("%w (scenario %q)", err, name)
				}
			}
		}
	}
	if j, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("loadtest: scenario: %w", err)
	}
	var sc Scenario
	if err := yaml.UnmarshalStrict(j, &sc); err != nil {
		return nil, fmt.Errorf("loadtest: scenario: %w", err)
	}
	return &sc, nil
}

// snakeAliases are the snake_case spellings of k6's executor keys.
var snakeAliases = map[string]string{
	"start_time": "startTime", "start_vus": "startVUs", "start_rate": "startRate", "time_unit": "timeUnit",
	"pre_allocated_vus": "preAllocatedVUs", "max_vus": "maxVUs",
	"graceful_stop": "gracefulStop", "graceful_ramp_down": "gracefulRampDown",
}

// k6Spelling renames m's snake_case aliases to k6's keys, refusing a key
// spelled both ways.
func k6Spelling(m map[string]any) error {
	for snake, camel := range snakeAliases {
		v, ok := m[snake]
		if !ok {
			continue
		}
		if _, both := m[camel]; both {
			return fmt.Errorf("loadtest: scenario: both %s and %s (k6's spelling) set", snake, camel)
		}
		delete(m, snake)
		m[camel] = v
	}
	return nil
}

// Normalize fills defaults and validates the scenario.
func (sc *Scenario) Normalize() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *Duration, d time.Duration) {
		if *v == 0 {
			*v = Duration(d)
		}
	}
	if sc.Executor == "" {
		sc.Executor = ConstantVUs
	}
	if sc.Balance == "" {
		sc.Balance = "round-robin"
	}
	if sc.Mix == (Mix{}) {
		sc.Mix.Get = 1
	}
	def(&sc.VUs, 10)
	def(&sc.PreAllocatedVUs, 10)
	def(&sc.MaxVUs, sc.PreAllocatedVUs)
	def(&sc.ListLimit, 50)
	def(&sc.BatchSize, 20)
	if sc.StaleIfError > 0 && sc.StaleIfErrorShare == 0 {
		sc.StaleIfErrorShare = 1
	}
	def(&sc.Setup.Products, 1000)
	defD(&sc.Duration, 10*time.Second)
	defD(&sc.TimeUnit, time.Second)
	defD(&sc.Timeout, 10*time.Second)
	defD(&sc.Probe.Grace, DefaultGrace)
	if sc.Probe.Sample == 0 {
		sc.Probe.Sample = min(sc.Setup.Products, 1000)
	}
	if sc.Seed == 0 {
		sc.Seed = 1
	}
	return sc.validate()
}

func (sc *Scenario) validate() error {
	if len(sc.Targets) == 0 {
		return fmt.Errorf("loadtest: no targets")
	}
	for i, t := range sc.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("loadtest: target %q is not an http(s) base URL", t)
		}
		sc.Targets[i] = strings.TrimRight(t, "/")
	}
	if sc.Balance != "round-robin" && sc.Balance != "random" {
		return fmt.Errorf("loadtest: balance must be round-robin or random, got %q", sc.Balance)
	}
	switch sc.Executor {
	case ConstantVUs:
		if sc.VUs < 1 {
			return fmt.Errorf("loadtest: vus must be >= 1")
		}
	case RampingVUs:
		if len(sc.Stages) == 0 {
			return fmt.Errorf("loadtest: ramping-vus needs stages")
		}
		for _, st := range sc.Stages {
			if st.Target < 0 || st.Duration < 0 {
				return fmt.Errorf("loadtest: stage targets and durations must be >= 0")
			}
		}
	case ConstantArrivalRate:
		if sc.Rate < 1 || sc.MaxVUs < sc.PreAllocatedVUs {
			return fmt.Errorf("loadtest: constant-arrival-rate needs rate >= 1 and max_vus >= pre_allocated_vus")
		}
	case RampingArrivalRate:
		if len(sc.Stages) == 0 || sc.StartRate < 0 || sc.MaxVUs < sc.PreAllocatedVUs {
			return fmt.Errorf("loadtest: ramping-arrival-rate needs stages, start_rate >= 0 and max_vus >= pre_allocated_vus")
		}
		for _, st := range sc.Stages {
			if st.Target < 0 || st.Duration < 0 {
				return fmt.Errorf("loadtest: stage targets and durations must be >= 0")
			}
		}
	default:
		return fmt.Errorf("loadtest: unknown executor %q (%s, %s, %s, %s)", sc.Executor, ConstantVUs, RampingVUs, ConstantArrivalRate, RampingArrivalRate)
	}
	for _, w := range sc.Mix.weights() {
		if w < 0 {
			return fmt.Errorf("loadtest: mix weights must be >= 0")
		}
	}
	if sc.ListLimit < 1 || sc.ListLimit > 200 {
		return fmt.Errorf("loadtest: list_limit must be 1 to 200")
	}
	if sc.BatchSize < 1 || sc.BatchSize > MaxBatchSize {
		return fmt.Errorf("loadtest: batch_size must be 1 to %d", MaxBatchSize)
	}
	if sc.StaleIfError != 0 && (sc.StaleIfError < Duration(time.Second) || sc.StaleIfError%Duration(time.Second) != 0) {
		return fmt.Errorf("loadtest: stale_if_error must be whole seconds, at least 1s")
	}
	if sc.StaleIfErrorShare < 0 || sc.StaleIfErrorShare > 1 {
		return fmt.Errorf("loadtest: stale_if_error_share must be 0 to 1")
	}
	if _, err := NewKeyChooser(sc.Keys, max(sc.Setup.Products, 1)); err != nil {
		return err
	}
	for _, name := range sc.ScenarioNames() {
		if sc.Scenarios[name].StartTime < 0 {
			return fmt.Errorf("loadtest: scenario %q: startTime must be >= 0", name)
		}
		if _, err := sc.Sub(name); err != nil {
			return err
		}
	}
	_, err := ParseThresholds(sc.Thresholds)
	return err
}

// TotalDuration is how long the executor runs (with scenarios, until the
// last one ends).
func (sc *Scenario) TotalDuration() time.Duration {
	if len(sc.Scenarios) > 0 {
		var end time.Duration
		for _, name := range sc.ScenarioNames() {
			if sub, err := sc.Sub(name); err == nil {
				end = max(end, time.Duration(sc.Scenarios[name].StartTime)+sub.TotalDuration())
			}
		}
		return end
	}
	if sc.Executor == RampingVUs || sc.Executor == RampingArrivalRate {
		var d time.Duration
		for _, st := range sc.Stages {
			d += time.Duration(st.Duration)
		}
		return d
	}
	return time.Duration(sc.Duration)
}

// MaxActiveVUs is the most VUs the executor will run at once (with
// scenarios, their sum).
func (sc *Scenario) MaxActiveVUs() int {
	if len(sc.Scenarios) > 0 {
		n := 0
		for _, name := range sc.ScenarioNames() {
			if sub, err := sc.Sub(name); err == nil {
				n += sub.MaxActiveVUs()
			}
		}
		return max(n, 1)
	}
	switch sc.Executor {
	case RampingVUs:
		m := sc.StartVUs
		for _, st := range sc.Stages {
			m = max(m, st.Target)
		}
		return max(m, 1)
	case ConstantArrivalRate, RampingArrivalRate:
		return sc.MaxVUs
	}
	return sc.VUs
}

// DefaultScenario is the scenario of `make demo` and `make loadtest`: 32 VUs
// for 12s, a read-heavy Zipf workload (s=1.1) over 10,000 products: 97%
// GET by id, 1% list pages, 2% writes (updates of popular products, creates
// and deletes of the run's own), each sent to a random replica, with the
// consistency probe on.
func DefaultScenario() Scenario {
	return Scenario{
		Name:     "default",
		Executor: ConstantVUs,
		VUs:      32,
		Duration: Duration(12 * time.Second),
		Balance:  "random",
		Keys:     KeySpec{Distribution: "zipf", S: 1.1},
		Mix:      Mix{Get: 97, List: 1, Update: 1.5, Create: 0.25, Delete: 0.25},
		Setup:    Setup{Products: 10000},
		Probe:    ProbeSpec{Enabled: true},
		Thresholds: map[string][]string{
			"http_req_failed": {"rate<0.01"},
			"checks":          {"rate>0.99"},
			"stale_reads":     {"count==0"},
		},
	}
}
