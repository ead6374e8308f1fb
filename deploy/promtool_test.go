package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// lookTool returns the path of a command the Debian packages .ci/run
// installs, or skips the test naming the package when it is missing.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not on PATH: install Debian package %s (.ci/run does)", name, pkg)
	}
	return p
}

// TestPromtoolRules: Prometheus's own checker accepts the rule file, and
// its unit tests (deploy/monitoring/alerts_test.yaml) pass: every alert
// fires on its input series after its `for` and stays silent on a
// healthy one.
func TestPromtoolRules(t *testing.T) {
	promtool := lookTool(t, "promtool", "prometheus")
	rules := filepath.Join(root, "k8s", "monitoring", "alerts.yaml")
	tests := filepath.Join(root, "deploy", "monitoring", "alerts_test.yaml")
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", tests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertTested: every alert of the rule file has, in
// alerts_test.yaml, a check where it fires and one where it is silent,
// and the tests name no alert the file does not have.
func TestEveryAlertTested(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range ruleGroups(t, "alerts.yaml") {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !fires[r.Alert] {
				t.Errorf("alert %s: no test where it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("alert %s: no test where it stays silent", r.Alert)
			}
		}
	}
	var unknown []string
	for _, m := range []map[string]bool{fires, silent} {
		for name := range m {
			if !alerts[name] && !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("alerts_test.yaml tests alerts the rule file does not have: %v", unknown)
	}
}
