package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml with every profile, as docker
// compose would.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithProfiles([]string{"*"}), cli.WithOsEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

// apiServices are the productsd replicas of the compose file: the
// services whose command is the image's default (serve).
func apiServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if s.Image == "productcache/productsd:dev" && len(s.Command) == 0 && len(s.Entrypoint) == 0 {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func envOf(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// TestComposeReplicas: each replica sets only settings productsd reads
// (and the ones a shared deployment needs), has its own REPLICA_ID, checks
// itself with `productsd healthcheck`, runs read-only, and gets the time
// to drain before it is killed.
func TestComposeReplicas(t *testing.T) {
	known := settings(t)
	p := loadCompose(t)
	api := apiServices(p)
	if len(api) != 3 {
		t.Fatalf("%d productsd replicas in docker-compose.yml, want 3", len(api))
	}
	ids := map[string]bool{}
	for _, s := range api {
		env := envOf(s)
		checkEnv(t, "compose service "+s.Name, env, known)
		ids[env["REPLICA_ID"]] = true
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 3 || s.HealthCheck.Test[1] != "/usr/local/bin/productsd" || s.HealthCheck.Test[2] != "healthcheck" {
			t.Errorf("%s: health check %+v, want productsd healthcheck", s.Name, s.HealthCheck)
		}
		if !s.ReadOnly {
			t.Errorf("%s: root filesystem not read-only", s.Name)
		}
		delay, _ := time.ParseDuration(env["SHUTDOWN_DELAY"])
		timeout, _ := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= delay+timeout {
			t.Errorf("%s: stop_grace_period %v, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %v", s.Name, s.StopGracePeriod, delay+timeout)
		}
	}
	if len(ids) != len(api) {
		t.Errorf("replicas share a REPLICA_ID: %v", ids)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`COPY --from=build [^\n]*/out/productsd[^\n]* /usr/local/bin/`).Match(dockerfile) {
		t.Error("the Dockerfile does not put productsd in /usr/local/bin, where the health check runs it")
	}
}

// TestComposeLoadBalancer: nginx balances over exactly the replicas, and
// re-resolves their names (resolve + resolver) instead of once at start.
func TestComposeLoadBalancer(t *testing.T) {
	p := loadCompose(t)
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9]+):8080\b([^;]*);`).FindAllStringSubmatch(string(conf), -1) {
		servers = append(servers, m[1])
		if !strings.Contains(m[2], "resolve") {
			t.Errorf("upstream server %s is resolved once at start: add resolve", m[1])
		}
	}
	var names []string
	for _, s := range apiServices(p) {
		names = append(names, s.Name)
	}
	slices.Sort(servers)
	if !slices.Equal(servers, names) {
		t.Errorf("nginx upstream servers %v, want the compose replicas %v", servers, names)
	}
	if !regexp.MustCompile(`(?m)^\s*resolver\s+127\.0\.0\.11\b`).Match(conf) || !regexp.MustCompile(`(?m)^\s*zone\s+\S+\s+\S+;`).Match(conf) {
		t.Error("nginx.conf lacks Docker's resolver or the upstream zone that resolve needs")
	}
	lb, ok := p.Services["lb"]
	if !ok {
		t.Fatal("no lb service")
	}
	if !slices.ContainsFunc(lb.Volumes, func(v types.ServiceVolumeConfig) bool {
		return strings.HasSuffix(v.Source, "deploy/nginx.conf") && v.Target == "/etc/nginx/nginx.conf"
	}) {
		t.Error("lb does not mount deploy/nginx.conf")
	}
	for _, s := range names {
		if lb.DependsOn[s].Condition != types.ServiceConditionHealthy {
			t.Errorf("lb starts before %s is healthy", s)
		}
	}
}

// TestComposeMonitoring: the monitoring profile runs Prometheus with the
// alert rules and a scrape of every replica, and Grafana provisioned with
// the data source and the dashboard; every mounted file exists.
func TestComposeMonitoring(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"prometheus", "grafana"} {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if !slices.Contains(s.Profiles, "monitoring") {
			t.Errorf("%s is not in the monitoring profile", name)
		}
		for _, v := range s.Volumes {
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
	}
	prom, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range apiServices(p) {
		if !strings.Contains(string(prom), `"`+s.Name+`:8080"`) {
			t.Errorf("prometheus.yml does not scrape %s", s.Name)
		}
	}
}
