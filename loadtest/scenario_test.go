package loadtest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleScenarios(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*")
	if len(files) < 3 {
		t.Fatalf("found %d example scenarios, want 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			sc, err := LoadScenario(f)
			if err != nil {
				t.Fatal(err)
			}
			sc.Targets = []string{"http://127.0.0.1:8080"}
			if err := sc.Normalize(); err != nil {
				t.Fatal(err)
			}
			if sc.TotalDuration() <= 0 || len(sc.Thresholds) == 0 || !sc.Probe.Enabled {
				t.Errorf("scenario %s: duration %v, %d thresholds, probe %v", f, sc.TotalDuration(), len(sc.Thresholds), sc.Probe.Enabled)
			}
		})
	}
}

func TestScenarioDefaultsAndErrors(t *testing.T) {
	sc, err := ParseScenario([]byte(`{"targets": ["http://a:1/"], "duration": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Normalize(); err != nil {
		t.Fatal(err)
	}
	if sc.Executor != ConstantVUs || sc.VUs != 10 || time.Duration(sc.Duration) != 2*time.Second || sc.Mix.Get != 1 ||
		sc.Targets[0] != "http://a:1" || time.Duration(sc.Probe.Grace) != DefaultGrace {
		t.Errorf("defaults not applied: %+v", sc)
	}
	for _, bad := range []string{
		`{"targets": ["http://a:1"], "vu": 3}`, // unknown field
		`{"targets": ["http://a:1"], "duration": "soon"}`,
	} {
		if _, err := ParseScenario([]byte(bad)); err == nil {
			t.Errorf("ParseScenario(%s) succeeded, want an error", bad)
		}
	}
	for _, bad := range []string{
		`{}`,
		`{"targets": ["http://a:1"], "executor": "per-vu-iterations"}`,
		`{"targets": ["http://a:1"], "executor": "ramping-vus"}`,
		`{"targets": ["http://a:1"], "executor": "constant-arrival-rate"}`,
		`{"targets": ["http://a:1"], "mix": {"get": -1}}`,
		`{"targets": ["http://a:1"], "keys": {"distribution": "zipf", "s": -2}}`,
		`{"targets": ["http://a:1"], "thresholds": {"http_req_duration": ["p(99)<"]}}`,
		`{"targets": ["a:1"]}`,
	} {
		sc, err := ParseScenario([]byte(bad))
		if err == nil {
			err = sc.Normalize()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "loadtest: ") {
			t.Errorf("%s: err = %v, want a loadtest error", bad, err)
		}
	}
}
