package deploy

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/tiercache/productcache/internal/testenv"
	"sigs.k8s.io/yaml"
)

// external are metric names the rules use that productsd does not export:
// Prometheus's own `up`, and kube-state-metrics' Deployment state.
var external = []string{"up", "kube_deployment_status_replicas_available", "kube_deployment_spec_replicas"}

// ruleGroups reads a file's rule groups: alerts.yaml is a rule file,
// prometheusrule.yaml a PrometheusRule whose spec holds the same groups.
func ruleGroups(t *testing.T, name string) []monitoringv1.RuleGroup {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "k8s", "monitoring", name))
	if err != nil {
		t.Fatal(err)
	}
	if name == "prometheusrule.yaml" {
		var pr monitoringv1.PrometheusRule
		if err := yaml.UnmarshalStrict(b, &pr); err != nil {
			t.Fatal(err)
		}
		return pr.Spec.Groups
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return spec.Groups
}

// expressions returns every PromQL expression of the alert rules and the
// dashboard, by where it is.
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, g := range ruleGroups(t, "alerts.yaml") {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr.String()
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "k8s", "monitoring", "grafana", "productsd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr, RefID string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			// Grafana's interval variable is not PromQL.
			out["panel "+p.Title+" "+tg.RefID] = strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d expressions found", len(out))
	}
	return out
}

// TestRulesAgree: the compose profile's rule file is one Prometheus
// accepts (rulefmt: expressions, durations, label templates), and the
// PrometheusRule holds the same groups.
func TestRulesAgree(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "k8s", "monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Fatalf("alerts.yaml: %v", errs)
	}
	a, b2 := ruleGroups(t, "alerts.yaml"), ruleGroups(t, "prometheusrule.yaml")
	if !reflect.DeepEqual(a, b2) {
		t.Fatal("k8s/monitoring/alerts.yaml and prometheusrule.yaml differ")
	}
}

// TestMetricsExist parses every expression of the alerts and the
// dashboard and checks each metric it names against the /metrics of a
// real productsd in tiered mode that has served some requests.
func TestMetricsExist(t *testing.T) {
	used := map[string][]string{}
	for where, expr := range expressions(t) {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
				used[vs.Name] = append(used[vs.Name], where)
			}
			return nil
		})
	}
	exported := scrape(t)
	var missing []string
	for name, where := range used {
		if !exported[name] && !slices.Contains(external, name) {
			sort.Strings(where)
			missing = append(missing, name+" (in "+strings.Join(where, "; ")+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d metrics named by the alerts or the dashboard are not exported by productsd:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
}

var listenRE = regexp.MustCompile(`productsd listening on (http://\S+) `)

// scrape runs productsd in tiered mode on a schema and Redis namespace of
// the test's own, writes and reads a product and a list page, and returns
// the names of the series its /metrics exposes (a histogram's _bucket,
// _sum and _count).
func scrape(t *testing.T) map[string]bool {
	t.Helper()
	_, dbURL := testenv.Schema(t)
	base := startProductsd(t, dbURL, testenv.Namespace(t))
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(base+"/products", "application/json", strings.NewReader(`{"name":"m","price_cents":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	for _, path := range []string{"/products/" + p.ID, "/products/" + p.ID, "/products?limit=5"} {
		if resp, err := c.Get(base + path); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	resp, err = c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// startProductsd runs productsd in tiered mode on the database dbURL and
// the Redis namespace ns and returns its base URL.
func startProductsd(t *testing.T, dbURL, ns string) string {
	t.Helper()
	base, _ := startProductsdAt(t, "127.0.0.1:0", dbURL, ns)
	return base
}

// startProductsdAt is startProductsd listening on addr, with extra
// environment, returning the process too.
func startProductsdAt(t *testing.T, addr, dbURL, ns string, env ...string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(productsd(t), "serve", "-addr", addr)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.RedisURL(),
		"CACHE_NAMESPACE="+ns, "CACHE_MODE=tiered"), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := listenRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("no listening line: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return m[1], cmd
}
