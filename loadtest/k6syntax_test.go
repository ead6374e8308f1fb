package loadtest

import (
	"strings"
	"testing"
	"time"
)

// k6Options is a scenarios block as k6's documentation writes it (the
// constant-arrival-rate and ramping-vus examples), in JSON.
const k6Options = `{
  "targets": [],
  "scenarios": {
    "constant_request_rate": {
      "executor": "constant-arrival-rate",
      "rate": 1000, "timeUnit": "1s", "duration": "30s",
      "preAllocatedVUs": 100, "maxVUs": 200
    },
    "contacts": {
      "executor": "ramping-vus", "startVUs": 0, "startTime": "5s",
      "stages": [{"duration": "20s", "target": 10}, {"duration": "10s", "target": 0}],
      "gracefulRampDown": "0s", "gracefulStop": "30s"
    }
  },
  "thresholds": {"http_req_failed": ["rate<0.01"], "http_req_duration": ["p(95)<200"]}
}`

// TestK6ScenarioSyntax: a k6 options object with its scenarios block
// parses unchanged into the executors it names, with k6's camelCase keys.
func TestK6ScenarioSyntax(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario([]byte(k6Options))
	if err != nil {
		t.Fatal(err)
	}
	sc.Targets = []string{"http://a"}
	rate, err := sc.Sub("constant_request_rate")
	if err != nil {
		t.Fatal(err)
	}
	if rate.Executor != ConstantArrivalRate || rate.Rate != 1000 || rate.TimeUnit != Duration(time.Second) ||
		rate.Duration != Duration(30*time.Second) || rate.PreAllocatedVUs != 100 || rate.MaxVUs != 200 {
		t.Errorf("constant_request_rate = %+v", rate)
	}
	ramp, err := sc.Sub("contacts")
	if err != nil {
		t.Fatal(err)
	}
	if ramp.Executor != RampingVUs || len(ramp.Stages) != 2 || ramp.Stages[0].Target != 10 {
		t.Errorf("contacts = %+v", ramp)
	}
	if got := sc.Scenarios["contacts"].StartTime; got != Duration(5*time.Second) {
		t.Errorf("startTime = %v, want 5s", got)
	}
}

// TestSnakeCaseAliases: the snake_case spellings read as k6's keys, both
// spellings of one key are refused, and a k6 key this runner does not
// have is an error naming it.
func TestSnakeCaseAliases(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario([]byte("targets: []\nscenarios:\n  s:\n    executor: constant-arrival-rate\n    rate: 5\n    duration: 1s\n    time_unit: 2s\n    pre_allocated_vus: 3\n    max_vus: 4\n    start_time: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := sc.Scenarios["s"]; e.TimeUnit != Duration(2*time.Second) || e.PreAllocatedVUs != 3 || e.MaxVUs != 4 || e.StartTime != Duration(time.Second) {
		t.Errorf("aliases read as %+v", e)
	}
	for in, want := range map[string]string{
		"targets: []\nmax_vus: 3\nmaxVUs: 4\n":                              "both max_vus and maxVUs",
		"targets: []\nscenarios:\n  s: {executor: constant-vus, exec: f}\n": `unknown field "exec"`,
	} {
		if _, err := ParseScenario([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one saying %q", in, err, want)
		}
	}
}
