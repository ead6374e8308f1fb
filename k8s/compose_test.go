package k8s

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The files of the laptop deployment, relative to this package.
const (
	composeFile  = "../docker-compose.yml"
	nginxConf    = "../deploy/nginx.conf"
	dockerfile   = "../Dockerfile"
	dockerignore = "../.dockerignore"
	moduleRoot   = ".."
)

// replicaName matches the API replica services.
var replicaName = regexp.MustCompile(`^api\d+$`)

// compose is a docker-compose.yml, parsed.
type compose map[string]any

func readCompose(t *testing.T) compose {
	t.Helper()
	docs, err := readDocs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || asMap(docs[0]) == nil {
		t.Fatalf("%s: want one YAML document, an object", composeFile)
	}
	return compose(asMap(docs[0]))
}

func (c compose) services() map[string]any { return asMap(c["services"]) }

func (c compose) service(t *testing.T, name string) map[string]any {
	t.Helper()
	s := asMap(c.services()[name])
	if s == nil {
		t.Fatalf("%s: no service %s", composeFile, name)
	}
	return s
}

// replicas returns the API replica services (api1, api2, ...), sorted.
func (c compose) replicas() []string {
	var out []string
	for name := range c.services() {
		if replicaName.MatchString(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// environment returns a service's environment, in either compose form.
func environment(s map[string]any) (map[string]string, error) {
	env := make(map[string]string)
	switch e := s["environment"].(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			env[k] = asString(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(asString(kv), "=")
			env[k] = v
		}
	default:
		return nil, fmt.Errorf("environment is a %T", e)
	}
	return env, nil
}

// commandLine returns a command or entrypoint as a list of arguments; the
// string form is split on white space, as compose does for simple strings.
func commandLine(v any) []string {
	if s, ok := v.(string); ok {
		return strings.Fields(s)
	}
	return asStrings(v)
}

// dependsOn returns a service's dependencies and their conditions.
func dependsOn(s map[string]any) map[string]string {
	out := make(map[string]string)
	switch d := s["depends_on"].(type) {
	case []any:
		for _, name := range d {
			out[asString(name)] = "service_started"
		}
	case map[string]any:
		for name, v := range d {
			out[name] = asString(dig(v, "condition"))
		}
	}
	return out
}

func TestComposeDatabases(t *testing.T) {
	c := readCompose(t)
	pg := c.service(t, "postgres")
	if img := asString(pg["image"]); !strings.HasPrefix(img, "postgres:15") {
		t.Errorf("postgres image %q, want postgres:15", img)
	}
	if test := strings.Join(commandLine(dig(pg, "healthcheck", "test")), " "); !strings.Contains(test, "pg_isready") {
		t.Errorf("postgres healthcheck %q, want pg_isready", test)
	}
	rd := c.service(t, "redis")
	if img := asString(rd["image"]); !strings.HasPrefix(img, "redis:7") {
		t.Errorf("redis image %q, want redis:7", img)
	}
	if err := checkRedisArgs(commandLine(rd["command"])); err != nil {
		t.Error(err)
	}
	if test := strings.Join(commandLine(dig(rd, "healthcheck", "test")), " "); !strings.Contains(test, "redis-cli ping") {
		t.Errorf("redis healthcheck %q, want redis-cli ping", test)
	}
}

func TestComposeReplicas(t *testing.T) {
	c := readCompose(t)
	names := c.replicas()
	if len(names) != 3 {
		t.Fatalf("API replicas %v, want 3 (api1, api2, api3)", names)
	}
	ids := map[string]string{}
	namespaces := map[string]bool{}
	var image string
	for _, name := range names {
		s := c.service(t, name)
		env, err := environment(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := checkConfig("service "+name, env, len(names)); err != nil {
			t.Error(err)
		}
		if other, dup := ids[env["REPLICA_ID"]]; dup {
			t.Errorf("%s and %s share REPLICA_ID %q: each ignores the other's invalidations", other, name, env["REPLICA_ID"])
		}
		ids[env["REPLICA_ID"]] = name
		namespaces[env["CACHE_NAMESPACE"]] = true
		if image != "" && asString(s["image"]) != image {
			t.Errorf("%s: image %v, want %s like the other replicas", name, s["image"], image)
		}
		image = asString(s["image"])
		if p, err := addrPort(env["ADDR"]); err != nil || p != 8080 {
			t.Errorf("%s: ADDR %q, want port 8080 (the load balancer's upstream port)", name, env["ADDR"])
		}
		for host, want := range map[string]string{hostOf(t, env["DATABASE_URL"]): "postgres", hostOf(t, env["REDIS_URL"]): "redis"} {
			if host != want {
				t.Errorf("%s: connects to %q, want the %s service", name, host, want)
			}
		}
		deps := dependsOn(s)
		for dep, cond := range map[string]string{"postgres": "service_healthy", "redis": "service_healthy"} {
			if deps[dep] != cond {
				t.Errorf("%s: depends_on %s with condition %q, want %s", name, dep, deps[dep], cond)
			}
		}
		if m, ok := deps["migrate"]; ok && m != "service_completed_successfully" {
			t.Errorf("%s: depends_on migrate with %q, want service_completed_successfully", name, m)
		}
	}
	if len(namespaces) != 1 {
		t.Errorf("the replicas use CACHE_NAMESPACE %v; they must share one, or they share neither L2 nor invalidations", namespaces)
	}
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	host, _, err := urlHostPort(rawURL, 0)
	if err != nil {
		t.Errorf("URL %q: %v", rawURL, err)
	}
	return host
}

func TestComposeMigrate(t *testing.T) {
	c := readCompose(t)
	s := asMap(c.services()["migrate"])
	if s == nil {
		t.Skip("no migrate service: the replicas migrate at start")
	}
	if got := commandLine(s["command"]); !slices.Equal(got, []string{"migrate"}) {
		t.Errorf("migrate command %q, want [migrate] (productsd migrate)", got)
	}
	env, _ := environment(s)
	for name := range env {
		if !slices.Contains(designEnv, name) {
			t.Errorf("migrate: %s is not a productsd setting", name)
		}
	}
	if dependsOn(s)["postgres"] != "service_healthy" {
		t.Error("migrate does not wait for a healthy postgres")
	}
	if asString(s["image"]) != asString(c.service(t, "api1")["image"]) {
		t.Errorf("migrate image %v differs from the replicas' %v", s["image"], c.service(t, "api1")["image"])
	}
}

// TestComposeLoadBalancer checks that nginx balances over exactly the
// replica services, on their port, and is published on 8080.
func TestComposeLoadBalancer(t *testing.T) {
	c := readCompose(t)
	lb := c.service(t, "lb")
	if img := asString(lb["image"]); !strings.HasPrefix(img, "nginx") {
		t.Errorf("lb image %q, want nginx", img)
	}
	mounted := false
	for _, v := range asStrings(lb["volumes"]) {
		src, _, _ := strings.Cut(v, ":")
		if filepath.Clean(filepath.Join(moduleRoot, src)) == filepath.Clean(nginxConf) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("lb volumes %v do not mount ./deploy/nginx.conf", lb["volumes"])
	}
	published := slices.ContainsFunc(asStrings(lb["ports"]), func(p string) bool { return strings.HasPrefix(p, "8080:") })
	if !published {
		t.Errorf("lb ports %v do not publish 8080", lb["ports"])
	}
	if dig(lb, "healthcheck", "test") == nil {
		t.Error("lb has no healthcheck")
	}

	conf := parseNginx(t)
	var want []string
	for _, name := range c.replicas() {
		want = append(want, name+":8080")
		if _, ok := dependsOn(lb)[name]; !ok {
			t.Errorf("lb does not depend on %s: nginx fails at start when an upstream host does not resolve", name)
		}
	}
	if !slices.Equal(conf.servers, want) {
		t.Errorf("%s upstream servers %v, want the replicas %v", nginxConf, conf.servers, want)
	}
	if conf.proxyPass != conf.upstream {
		t.Errorf("%s: proxy_pass to %q, want the upstream %q", nginxConf, conf.proxyPass, conf.upstream)
	}
	if !slices.Contains(conf.listen, "8080") {
		t.Errorf("%s listens on %v, want 8080 (the published port)", nginxConf, conf.listen)
	}
}

type nginxConfig struct {
	upstream, proxyPass string
	servers, listen     []string
}

func parseNginx(t *testing.T) nginxConfig {
	t.Helper()
	data, err := os.ReadFile(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	var conf nginxConfig
	var inUpstream bool
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		switch {
		case len(f) == 0:
		case f[0] == "upstream" && len(f) >= 2:
			if conf.upstream != "" {
				t.Fatalf("%s: more than one upstream", nginxConf)
			}
			conf.upstream, inUpstream = f[1], true
		case inUpstream && f[0] == "}":
			inUpstream = false
		case inUpstream && f[0] == "server" && len(f) >= 2:
			conf.servers = append(conf.servers, f[1])
		case f[0] == "proxy_pass" && len(f) == 2:
			conf.proxyPass = strings.TrimPrefix(f[1], "http://")
		case f[0] == "listen" && len(f) >= 2:
			conf.listen = append(conf.listen, f[1])
		}
	}
	return conf
}

func TestComposeLoadtest(t *testing.T) {
	c := readCompose(t)
	s := c.service(t, "loadtest")
	if !slices.Contains(asStrings(s["profiles"]), "loadtest") {
		t.Errorf("loadtest profiles %v, want [loadtest] so that `docker compose up` does not start it", s["profiles"])
	}
	if ep := commandLine(s["entrypoint"]); len(ep) == 0 || filepath.Base(ep[0]) != "loadtest" {
		t.Errorf("loadtest entrypoint %q, want the loadtest binary", ep)
	}
	args := commandLine(s["command"])
	if len(args) == 0 || args[0] != "run" {
		t.Errorf("loadtest command %q, want `run ...`", args)
	}
	targets, ok := flagValue(args, "--targets")
	if !ok {
		t.Fatalf("loadtest command %q has no --targets", args)
	}
	var want []string
	for _, name := range c.replicas() {
		want = append(want, "http://"+name+":8080")
	}
	if got := strings.Split(targets, ","); !slices.Equal(got, want) {
		t.Errorf("loadtest --targets %v, want every replica %v", got, want)
	}
	if d, ok := flagValue(args, "--duration"); !ok || d == "" {
		t.Errorf("loadtest command %q has no --duration", args)
	}
}

// TestComposeBuilds checks that every service built here builds the
// Dockerfile at the module root.
func TestComposeBuilds(t *testing.T) {
	c := readCompose(t)
	for name, s := range c.services() {
		b := dig(s, "build")
		if b == nil {
			continue
		}
		ctx, file := asString(b), "Dockerfile"
		if m := asMap(b); m != nil {
			ctx = asString(m["context"])
			if f := asString(m["dockerfile"]); f != "" {
				file = f
			}
		}
		if filepath.Clean(filepath.Join(moduleRoot, ctx)) != filepath.Clean(moduleRoot) {
			t.Errorf("%s: build context %q, want . (the module root)", name, ctx)
		}
		if _, err := os.Stat(filepath.Join(moduleRoot, ctx, file)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// dockerStage is one FROM ... stage of a Dockerfile.
type dockerStage struct {
	from  string
	lines []string // instructions, continuation lines joined
}

func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	var stages []dockerStage
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	for line := range strings.SplitSeq(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok && len(stages) == 0 {
				args[k] = v
			}
		case "FROM":
			from := strings.Fields(rest)[0]
			for k, v := range args {
				from = strings.ReplaceAll(from, "${"+k+"}", v)
			}
			stages = append(stages, dockerStage{from: from})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a multi-stage build", dockerfile, len(stages))
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	builder, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(builder.from, "golang:1.26") {
		t.Errorf("builder FROM %s, want golang:1.26", builder.from)
	}
	body := strings.Join(builder.lines, "\n")
	for _, pkg := range []string{"./cmd/productsd", "./cmd/loadtest"} {
		if !regexp.MustCompile(`go build[^\n]*` + regexp.QuoteMeta(pkg) + `\b`).MatchString(body) {
			t.Errorf("the builder does not `go build` %s", pkg)
		}
		if fi, err := os.Stat(filepath.Join(moduleRoot, pkg)); err != nil || !fi.IsDir() {
			t.Errorf("%s is built but is not a directory of the module: %v", pkg, err)
		}
	}
	if !strings.Contains(body, "CGO_ENABLED=0") {
		t.Error("the builder does not set CGO_ENABLED=0 (the final image has no libc)")
	}
	if !strings.Contains(body, "--mount=type=cache,target=/go/pkg/mod") {
		t.Error("the builder does not cache the module download")
	}

	user, expose, entrypoint, copied := "", "", "", ""
	for _, l := range final.lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "USER":
			user = rest
		case "EXPOSE":
			expose = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "COPY":
			copied += " " + rest
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "root" || uid == "0" {
		t.Errorf("final stage USER %q, want a non-root user", user)
	}
	if expose != "8080" {
		t.Errorf("EXPOSE %q, want 8080", expose)
	}
	if !strings.Contains(entrypoint, "productsd") {
		t.Errorf("ENTRYPOINT %s, want productsd", entrypoint)
	}
	// The compose loadtest service runs the binary by this path.
	ep := commandLine(readCompose(t).service(t, "loadtest")["entrypoint"])
	for _, bin := range []string{"productsd", "loadtest"} {
		if !strings.Contains(copied, "/"+bin) {
			t.Errorf("the final stage does not copy %s", bin)
		}
	}
	if len(ep) > 0 && !strings.Contains(copied, filepath.Dir(ep[0])) {
		t.Errorf("compose runs %s, but the final stage copies to %q", ep[0], copied)
	}
}

// TestDockerignore checks that the build context keeps what the build
// needs and leaves out the repository's history.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	if !slices.Contains(patterns, ".git") {
		t.Error(".dockerignore does not exclude .git")
	}
	needed := []string{"go.mod", "go.sum", "cmd", "cmd/productsd", "cmd/loadtest", "tiercache", "products", "loadtest", "internal"}
	for _, p := range patterns {
		for _, n := range needed {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "/"), n); ok && !strings.HasPrefix(p, "!") {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, n)
			}
		}
	}
}
