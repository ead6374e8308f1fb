package k8s

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// overlays are the deployable builds and what each must look like.
var overlays = []struct {
	dir        string
	namespace  string
	replicas   int      // the Deployment's count (the HPA's starting point)
	minHPA     int      // the HPA's floor at least
	external   []string // Secrets created outside the files (see README.md)
	databases  bool     // PostgreSQL and Redis run inside the build
	imageTagOK func(tag string) bool
}{
	{"overlays/dev", "productcache-dev", 3, 3, nil, true, func(tag string) bool { return tag != "" }},
	{"overlays/prod", "productcache", 6, 6, []string{"productsd-secrets"}, false,
		func(tag string) bool { return tag != "" && tag != ":latest" }},
}

func TestEveryYAMLFileParses(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		docs, err := readDocs(path)
		if err != nil {
			t.Error(err)
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML documents", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEveryKustomizationBuilds resolves every kustomization.yaml under k8s/
// as kubectl kustomize would.
func TestEveryKustomizationBuilds(t *testing.T) {
	dirs := kustomizationDirs(t)
	if len(dirs) < 3 {
		t.Fatalf("found kustomizations in %v, want base and the dev and prod overlays", dirs)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			if _, err := build(dir); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestNoOrphanManifests fails for a YAML file no kustomization uses: it
// would never be applied.
func TestNoOrphanManifests(t *testing.T) {
	used := map[string]bool{}
	for _, dir := range kustomizationDirs(t) {
		used[filepath.Join(dir, "kustomization.yaml")] = true
		k, err := readKustomization(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range k.Resources {
			used[filepath.Join(dir, r)] = true
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				used[filepath.Join(dir, p.Path)] = true
			}
		}
	}
	_ = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".yaml" && !used[path] {
			t.Errorf("%s is not referenced by any kustomization.yaml", path)
		}
		return err
	})
}

func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func TestOverlays(t *testing.T) {
	for _, o := range overlays {
		t.Run(o.dir, func(t *testing.T) {
			rs, err := build(o.dir)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			deploy := one(t, rs, "Deployment", "productsd")
			if got := int(dig(deploy.obj, "spec", "replicas").(float64)); got != o.replicas {
				t.Errorf("Deployment productsd: replicas %d, want %d", got, o.replicas)
			}
			checkNamespace(t, rs, o.namespace)
			checkReferences(t, rs, o.external)
			checkProductsd(t, rs, deploy, o.replicas, o.imageTagOK)
			checkSelectors(t, rs, deploy)
			checkHPA(t, rs, o.replicas, o.minHPA)
			checkDatabases(t, rs, deploy, o.databases)
			readme, err := os.ReadFile("README.md")
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range o.external {
				if !strings.Contains(string(readme), "secret generic "+name) {
					t.Errorf("Secret %s comes from outside the build, but README.md does not show how to create it", name)
				}
			}
		})
	}
}

// one returns the only object of a kind and name, failing the test if there
// is not exactly one.
func one(t *testing.T, rs []resource, kind, name string) resource {
	t.Helper()
	i := find(rs, kind, name)
	if i < 0 {
		t.Fatalf("no %s/%s in the build", kind, name)
	}
	return rs[i]
}

func checkNamespace(t *testing.T, rs []resource, ns string) {
	t.Helper()
	if i := find(rs, "Namespace", ns); i < 0 {
		t.Errorf("the build does not create Namespace %s", ns)
	}
	for _, r := range rs {
		if !clusterScoped[r.kind()] && r.namespace() != ns {
			t.Errorf("%s: namespace %q, want %q", r.id(), r.namespace(), ns)
		}
	}
}

// checkReferences checks that every ConfigMap, Secret, ServiceAccount and
// key a pod names exists in the build (or is a documented external Secret).
func checkReferences(t *testing.T, rs []resource, external []string) {
	t.Helper()
	for _, r := range rs {
		spec := podSpec(r)
		if spec == nil {
			continue
		}
		if sa := asString(spec["serviceAccountName"]); sa != "" && find(rs, "ServiceAccount", sa) < 0 {
			t.Errorf("%s: ServiceAccount %s does not exist", r.id(), sa)
		}
		for _, c := range podContainers(r) {
			where := r.id() + " container " + asString(c["name"])
			for _, ef := range asList(c["envFrom"]) {
				for kind, field := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
					if name := asString(dig(ef, field, "name")); name != "" {
						checkRef(t, rs, external, where, kind, name, "")
					}
				}
			}
			for _, e := range asList(c["env"]) {
				for kind, field := range map[string]string{"ConfigMap": "configMapKeyRef", "Secret": "secretKeyRef"} {
					if name := asString(dig(e, "valueFrom", field, "name")); name != "" {
						checkRef(t, rs, external, where, kind, name, asString(dig(e, "valueFrom", field, "key")))
					}
				}
			}
		}
	}
}

func checkRef(t *testing.T, rs []resource, external []string, where, kind, name, key string) {
	t.Helper()
	if kind == "Secret" && slices.Contains(external, name) {
		return
	}
	i := find(rs, kind, name)
	if i < 0 {
		t.Errorf("%s: refers to %s %s, which the build does not define", where, kind, name)
		return
	}
	if _, ok := asMap(rs[i].obj["data"])[key]; key != "" && !ok {
		t.Errorf("%s: refers to key %s of %s %s, which has none", where, key, kind, name)
	}
}

// containerEnv returns a container's environment, with the values the build
// shows (unknownValue for the rest).
func containerEnv(rs []resource, c map[string]any) map[string]string {
	env := make(map[string]string)
	for _, ef := range asList(c["envFrom"]) {
		for kind, field := range map[string]string{"ConfigMap": "configMapRef", "Secret": "secretRef"} {
			if i := find(rs, kind, asString(dig(ef, field, "name"))); i >= 0 {
				for k, v := range asMap(rs[i].obj["data"]) {
					env[k] = asString(v)
				}
			}
		}
	}
	for _, e := range asList(c["env"]) {
		name, v := asString(dig(e, "name")), unknownValue
		if val, ok := asMap(e)["value"]; ok {
			v = asString(val)
		}
		for kind, field := range map[string]string{"ConfigMap": "configMapKeyRef", "Secret": "secretKeyRef"} {
			ref := dig(e, "valueFrom", field)
			if i := find(rs, kind, asString(dig(ref, "name"))); ref != nil && i >= 0 {
				v = asString(dig(rs[i].obj, "data", asString(dig(ref, "key"))))
			}
		}
		env[name] = v
	}
	return env
}

func containerByName(t *testing.T, r resource, field, name string) map[string]any {
	t.Helper()
	for _, c := range asList(dig(podSpec(r), field)) {
		if asString(dig(c, "name")) == name {
			return asMap(c)
		}
	}
	t.Fatalf("%s has no %s named %s", r.id(), field, name)
	return nil
}

func checkProductsd(t *testing.T, rs []resource, deploy resource, replicas int, tagOK func(string) bool) {
	t.Helper()
	c := containerByName(t, deploy, "containers", "productsd")
	env := containerEnv(rs, c)
	if err := checkConfig("container productsd", env, replicas); err != nil {
		t.Error(err)
	}
	if got := asString(dig(c, "env", strconv.Itoa(envIndex(c, "REPLICA_ID")), "valueFrom", "fieldRef", "fieldPath")); got != "metadata.name" {
		t.Errorf("REPLICA_ID comes from %q, want the pod name (fieldRef metadata.name)", got)
	}
	for _, name := range []string{"DATABASE_URL", "REDIS_URL"} {
		if dig(c, "env", strconv.Itoa(envIndex(c, name)), "valueFrom", "secretKeyRef") == nil {
			t.Errorf("%s does not come from a Secret", name)
		}
	}
	port, _ := addrPort(env["ADDR"])
	checkPorts(t, c, port)
	checkSecurity(t, deploy)
	if _, tag := splitImage(asString(c["image"])); !tagOK(tag) {
		t.Errorf("image %s: tag %q is not acceptable here", c["image"], tag)
	}
	ann := asMap(dig(deploy.obj, "spec", "template", "metadata", "annotations"))
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" ||
		ann["prometheus.io/port"] != strconv.Itoa(port) {
		t.Errorf("pod annotations %v: want prometheus.io/scrape \"true\", path /metrics, port %d", ann, port)
	}
	if g := dig(podSpec(deploy), "terminationGracePeriodSeconds"); g == nil || g.(float64) < 10 {
		t.Errorf("terminationGracePeriodSeconds %v, want at least 10 to drain", g)
	}
	m := containerByName(t, deploy, "initContainers", "migrate")
	if m["image"] != c["image"] || !slices.Equal(asStrings(m["args"]), []string{"migrate"}) {
		t.Errorf("init container migrate: image %v args %v, want %v [migrate]", m["image"], m["args"], c["image"])
	}
	migrateEnv := containerEnv(rs, m)
	for name := range migrateEnv {
		if !slices.Contains(designEnv, name) {
			t.Errorf("init container migrate: %s is not a productsd setting", name)
		}
	}
	if _, ok := migrateEnv["DATABASE_URL"]; !ok {
		t.Error("init container migrate: DATABASE_URL is not set")
	}
}

func envIndex(c map[string]any, name string) int {
	return slices.IndexFunc(asList(c["env"]), func(e any) bool { return asString(dig(e, "name")) == name })
}

// checkPorts checks that the container listens where ADDR says and that
// the probes ask /healthz and /readyz there.
func checkPorts(t *testing.T, c map[string]any, port int) {
	t.Helper()
	named := map[string]int{}
	for _, p := range asList(c["ports"]) {
		named[asString(dig(p, "name"))] = int(dig(p, "containerPort").(float64))
	}
	if !slices.Contains(slices.Collect(maps.Values(named)), port) {
		t.Errorf("container ports %v do not include ADDR's port %d", named, port)
	}
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		get := dig(c, probe, "httpGet")
		if get == nil {
			t.Errorf("%s: missing, or not an httpGet probe", probe)
			continue
		}
		if got := asString(dig(get, "path")); got != path {
			t.Errorf("%s: path %q, want %q", probe, got, path)
		}
		p := dig(get, "port")
		if n, ok := named[asString(p)]; ok {
			p = float64(n)
		}
		if got, _ := p.(float64); int(got) != port {
			t.Errorf("%s: port %v, want the container port %d", probe, dig(get, "port"), port)
		}
	}
}

func checkSecurity(t *testing.T, deploy resource) {
	t.Helper()
	pod := podSpec(deploy)
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if u, ok := dig(pod, "securityContext", "runAsUser").(float64); !ok || u == 0 {
		t.Errorf("pod securityContext.runAsUser %v, want a non-zero uid", dig(pod, "securityContext", "runAsUser"))
	}
	for _, field := range []string{"initContainers", "containers"} {
		for _, c := range asList(pod[field]) {
			sc := dig(c, "securityContext")
			if dig(sc, "readOnlyRootFilesystem") != true || dig(sc, "allowPrivilegeEscalation") != false ||
				!slices.Contains(asStrings(dig(sc, "capabilities", "drop")), "ALL") {
				t.Errorf("container %v: securityContext %v, want a read-only root, no privilege escalation, all capabilities dropped",
					dig(c, "name"), sc)
			}
			for _, kind := range []string{"requests", "limits"} {
				if dig(c, "resources", kind, "memory") == nil {
					t.Errorf("container %v: no resources.%s.memory", dig(c, "name"), kind)
				}
			}
			if dig(c, "resources", "requests", "cpu") == nil {
				t.Errorf("container %v: no resources.requests.cpu", dig(c, "name"))
			}
		}
	}
}

// checkSelectors checks that the Service, the PodDisruptionBudget and the
// spread constraints select the Deployment's pods, and that the Service
// reaches the container port.
func checkSelectors(t *testing.T, rs []resource, deploy resource) {
	t.Helper()
	podLabels := asMap(dig(deploy.obj, "spec", "template", "metadata", "labels"))
	selects := func(sel map[string]any) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if sel := asMap(dig(deploy.obj, "spec", "selector", "matchLabels")); !selects(sel) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", sel, podLabels)
	}
	svc := one(t, rs, "Service", "productsd")
	if sel := asMap(dig(svc.obj, "spec", "selector")); !selects(sel) {
		t.Errorf("Service selector %v does not match the pod labels %v", sel, podLabels)
	}
	c := containerByName(t, deploy, "containers", "productsd")
	for _, p := range asList(dig(svc.obj, "spec", "ports")) {
		target := asString(dig(p, "targetPort"))
		ok := slices.ContainsFunc(asList(c["ports"]), func(cp any) bool {
			return asString(dig(cp, "name")) == target || asString(dig(cp, "containerPort")) == target
		})
		if !ok {
			t.Errorf("Service port %v: targetPort %s is not a port of container productsd", dig(p, "name"), target)
		}
	}
	pdb := one(t, rs, "PodDisruptionBudget", "productsd")
	if sel := asMap(dig(pdb.obj, "spec", "selector", "matchLabels")); !selects(sel) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels %v", sel, podLabels)
	}
	if dig(pdb.obj, "spec", "maxUnavailable") == nil && dig(pdb.obj, "spec", "minAvailable") == nil {
		t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
	}
	tsc := asList(dig(podSpec(deploy), "topologySpreadConstraints"))
	if len(tsc) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	for _, c := range tsc {
		if sel := asMap(dig(c, "labelSelector", "matchLabels")); !selects(sel) {
			t.Errorf("topologySpreadConstraint %v: selector %v does not match the pod labels", dig(c, "topologyKey"), sel)
		}
	}
}

func checkHPA(t *testing.T, rs []resource, replicas, minFloor int) {
	t.Helper()
	hpa := one(t, rs, "HorizontalPodAutoscaler", "productsd")
	ref := dig(hpa.obj, "spec", "scaleTargetRef")
	if asString(dig(ref, "kind")) != "Deployment" || find(rs, "Deployment", asString(dig(ref, "name"))) < 0 {
		t.Errorf("HPA scaleTargetRef %v is not a Deployment of the build", ref)
	}
	lo, _ := dig(hpa.obj, "spec", "minReplicas").(float64)
	hi, _ := dig(hpa.obj, "spec", "maxReplicas").(float64)
	if int(lo) < minFloor || lo > hi || replicas < int(lo) || replicas > int(hi) {
		t.Errorf("HPA min %v max %v, Deployment replicas %d: want %d <= min <= replicas <= max", lo, hi, replicas, minFloor)
	}
}

// checkDatabases checks, for a build that runs its own PostgreSQL and Redis,
// that the URLs productsd gets name Services of the build on the right
// ports, and that Redis keeps no persistence; for one that does not, that
// it runs neither.
func checkDatabases(t *testing.T, rs []resource, deploy resource, inside bool) {
	t.Helper()
	env := containerEnv(rs, containerByName(t, deploy, "containers", "productsd"))
	for _, db := range []struct{ name, env, image string }{{"postgres", "DATABASE_URL", "postgres:"}, {"redis", "REDIS_URL", "redis:"}} {
		var workloads []string
		for _, r := range rs {
			for _, c := range podContainers(r) {
				if strings.HasPrefix(asString(c["image"]), db.image) {
					workloads = append(workloads, r.id())
				}
			}
		}
		if !inside {
			if len(workloads) > 0 {
				t.Errorf("%s runs inside this build (%v); this overlay uses an external one", db.name, workloads)
			}
			continue
		}
		if len(workloads) != 1 {
			t.Errorf("want one %s workload, got %v", db.name, workloads)
		}
		host, port, err := urlHostPort(env[db.env], map[string]int{"postgres": 5432, "redis": 6379}[db.name])
		if err != nil {
			t.Errorf("%s %q: %v", db.env, env[db.env], err)
			continue
		}
		i := find(rs, "Service", host)
		if i < 0 {
			t.Errorf("%s names host %s, which is not a Service of the build", db.env, host)
			continue
		}
		ports := asList(dig(rs[i].obj, "spec", "ports"))
		if !slices.ContainsFunc(ports, func(p any) bool { return asString(dig(p, "port")) == strconv.Itoa(port) }) {
			t.Errorf("%s names port %d, which Service %s does not expose", db.env, port, host)
		}
	}
	if inside {
		r := one(t, rs, "Deployment", "redis")
		c := containerByName(t, r, "containers", "redis")
		if err := checkRedisArgs(append(asStrings(c["command"]), asStrings(c["args"])...)); err != nil {
			t.Error(err)
		}
	}
}

// TestResolverCatchesMistakes shows that the checks above fail for the
// mistakes they exist to catch, on a scratch copy of the manifests.
func TestResolverCatchesMistakes(t *testing.T) {
	tests := []struct {
		name, file, old, new, want string
	}{
		{"missing resource", "base/kustomization.yaml", "- pdb.yaml", "- pdbs.yaml", "pdbs.yaml"},
		{"patch of an unknown object", "overlays/prod/hpa-patch.yaml", "name: productsd", "name: products", "no resource"},
		{"merge of an unknown ConfigMap", "overlays/dev/kustomization.yaml", "- name: productsd-config", "- name: productsd-conf", "no base defines it"},
		{"typo in a field", "overlays/dev/kustomization.yaml", "resources:", "resource:", "unknown field"},
		{"image rename that misses", "overlays/prod/kustomization.yaml", "- name: productcache/productsd", "- name: productsd", "matches no container"},
		{"JSON patch of a missing path", "overlays/prod/pdb-patch.yaml", "/spec/maxUnavailable", "/spec/maxUnavail", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, ".")
			path := filepath.Join(dir, tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tt.old) {
				t.Fatalf("%s does not contain %q; update this test", tt.file, tt.old)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(data), tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var errs []error
			for _, o := range []string{"overlays/dev", "overlays/prod"} {
				_, err := build(filepath.Join(dir, o))
				errs = append(errs, err)
			}
			err = errors.Join(errs...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("build error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestConfigChecksCatchMistakes does the same for the settings checks.
func TestConfigChecksCatchMistakes(t *testing.T) {
	good := map[string]string{
		"ADDR": ":8080", "DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://r:6379/0",
		"CACHE_MODE": "tiered", "CACHE_NAMESPACE": "productsd", "REPLICA_ID": "a",
		"CACHE_L1_TTL": "30s", "CACHE_L2_TTL": "1h",
	}
	if err := checkConfig("good", good, 3); err != nil {
		t.Fatalf("a good configuration fails: %v", err)
	}
	tests := []struct{ name, key, value, want string }{
		{"unknown name", "CACHE_TTL", "30s", "not a productsd setting"},
		{"local with replicas", "CACHE_MODE", "local", "one replica only"},
		{"bad duration", "CACHE_L1_TTL", "30", "duration"},
		{"L1 TTL above L2 TTL", "CACHE_L1_TTL", "2h", "exceeds CACHE_L2_TTL"},
		{"bad ADDR", "ADDR", "8080", "ADDR"},
		{"missing required", "REPLICA_ID", "", "REPLICA_ID is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(good)
			if tt.value == "" {
				delete(env, tt.key)
			} else {
				env[tt.key] = tt.value
			}
			if err := checkConfig("bad", env, 3); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// copyTree copies the YAML files under src to a temporary directory.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, path)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", src, err))
	}
	return dst
}
