package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays are the kustomizations an operator applies.
var overlays = []string{"k8s/overlays/dev", "k8s/overlays/prod"}

// rendered is one overlay's output, each object decoded into its type.
type rendered struct {
	docs    [][]byte       // each object as YAML
	objects map[string]any // "Kind/name" -> *typed object
}

// newObject returns a pointer to the Go type of kind; unknown kinds fail.
func newObject(kind string) (any, error) {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}, nil
	case "StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "Service":
		return &corev1.Service{}, nil
	case "ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "Secret":
		return &corev1.Secret{}, nil
	case "Namespace":
		return &corev1.Namespace{}, nil
	case "HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "PodMonitor":
		return &monitoringv1.PodMonitor{}, nil
	case "PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	}
	return nil, fmt.Errorf("no Go type for kind %s: add it to newObject", kind)
}

// render builds dir with krusty, as kubectl kustomize does, and decodes
// every object strictly: a field its type does not have fails.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := rendered{objects: map[string]any{}}
	for _, res := range rm.Resources() {
		doc, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := newObject(res.GetKind())
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s: %s/%s does not decode strictly: %v", dir, res.GetKind(), res.GetName(), err)
			continue
		}
		r.docs = append(r.docs, doc)
		r.objects[res.GetKind()+"/"+res.GetName()] = obj
	}
	return r
}

// get returns the object kind/name of r as T.
func get[T any](t *testing.T, r rendered, kind, name string) T {
	t.Helper()
	o, ok := r.objects[kind+"/"+name].(T)
	if !ok {
		var names []string
		for k := range r.objects {
			names = append(names, k)
		}
		sort.Strings(names)
		t.Fatalf("no %s/%s among %v", kind, name, names)
	}
	return o
}

// TestOverlaysRender: every overlay renders, strictly decodes, and (where
// kubectl exists) equals `kubectl kustomize`'s output.
func TestOverlaysRender(t *testing.T) {
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			if _, err := exec.LookPath("kubectl"); err != nil {
				t.Log("kubectl not installed: not compared")
				return
			}
			out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, dir)).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			want := decodeAll(t, bytes.Join(r.docs, []byte("---\n")))
			got := decodeAll(t, out)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("krusty and kubectl kustomize disagree on %s:\nkubectl:\n%s", dir, out)
			}
		})
	}
}

// decodeAll parses a YAML stream into objects keyed by kind/name.
func decodeAll(t *testing.T, stream []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	for _, doc := range bytes.Split(stream, []byte("\n---\n")) {
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		m[fmt.Sprint(o["kind"], "/", md["name"])] = o
	}
	return m
}

// productsdContainer returns the productsd container and its environment
// as the pod sees it (ConfigMap, Secret keys and literals).
func productsdEnv(t *testing.T, r rendered, d *appsv1.Deployment) (corev1.Container, map[string]string) {
	t.Helper()
	var c corev1.Container
	for _, x := range d.Spec.Template.Spec.Containers {
		if x.Name == "productsd" {
			c = x
		}
	}
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			cm := get[*corev1.ConfigMap](t, r, "ConfigMap", ef.ConfigMapRef.Name)
			for k, v := range cm.Data {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	return c, env
}

// TestProductsdDeployment checks each overlay's Deployment against what
// productsd needs: its settings are ones it reads, a rollout drains, the
// container is locked down, and the prod overlay uses a managed Redis in
// cluster or sentinel mode, spread strictly across zones.
func TestProductsdDeployment(t *testing.T) {
	known := settings(t)
	for _, dir := range overlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			d := get[*appsv1.Deployment](t, r, "Deployment", "productsd")
			c, env := productsdEnv(t, r, d)
			checkEnv(t, dir, env, known)
			delay, err1 := time.ParseDuration(env["SHUTDOWN_DELAY"])
			timeout, err2 := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
			if err1 != nil || err2 != nil || delay <= 0 {
				t.Fatalf("SHUTDOWN_DELAY %q, SHUTDOWN_TIMEOUT %q: want positive durations", env["SHUTDOWN_DELAY"], env["SHUTDOWN_TIMEOUT"])
			}
			grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace <= delay+timeout {
				t.Errorf("terminationGracePeriodSeconds %v, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %v", grace, delay+timeout)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("productsd container security context %+v: want a read-only root filesystem and no privilege escalation", sc)
			}
			if ps := d.Spec.Template.Spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
				t.Error("pod does not run as non-root")
			}
			get[*autoscalingv2.HorizontalPodAutoscaler](t, r, "HorizontalPodAutoscaler", "productsd")
			get[*policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget", "productsd")
			checkNetworkPolicy(t, get[*networkingv1.NetworkPolicy](t, r, "NetworkPolicy", "productsd"), d)
			if filepath.Base(dir) != "prod" {
				return
			}
			if m := env["REDIS_MODE"]; m != "cluster" && m != "sentinel" {
				t.Errorf("prod REDIS_MODE %q, want cluster or sentinel (a managed Redis)", m)
			}
			tsc := d.Spec.Template.Spec.TopologySpreadConstraints
			if len(tsc) != 2 || tsc[0].TopologyKey != "topology.kubernetes.io/zone" || tsc[0].WhenUnsatisfiable != corev1.DoNotSchedule {
				t.Errorf("prod topologySpreadConstraints %+v, want zone DoNotSchedule then hostname", tsc)
			}
			get[*monitoringv1.PodMonitor](t, r, "PodMonitor", "productsd")
			get[*monitoringv1.PrometheusRule](t, r, "PrometheusRule", "productsd")
			get[*corev1.ConfigMap](t, r, "ConfigMap", "productsd-dashboard")
		})
	}
}

// checkNetworkPolicy: the policy selects the productsd pods, lets in only
// the container's HTTP port, and lets out only PostgreSQL, Redis and DNS.
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, d *appsv1.Deployment) {
	t.Helper()
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("NetworkPolicy selects %s=%s, which the pods lack", k, v)
		}
	}
	if len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("NetworkPolicy policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	for _, in := range np.Spec.Ingress {
		for _, p := range in.Ports {
			if p.Port == nil || p.Port.IntValue() != 8080 {
				t.Errorf("NetworkPolicy admits port %v, want only 8080", p.Port)
			}
		}
		if len(in.Ports) == 0 {
			t.Error("NetworkPolicy admits every port")
		}
	}
	allowed := map[int]bool{5432: true, 6379: true, 6380: true, 26379: true, 53: true}
	for _, out := range np.Spec.Egress {
		if len(out.Ports) == 0 {
			t.Error("NetworkPolicy lets out every port")
		}
		for _, p := range out.Ports {
			if p.Port == nil || !allowed[p.Port.IntValue()] {
				t.Errorf("NetworkPolicy lets out port %v, want only PostgreSQL, Redis, Sentinel and DNS", p.Port)
			}
		}
	}
}

// TestNoOrphanManifests: every YAML file under k8s/ is used by some
// kustomization (a file nothing includes is never applied).
func TestNoOrphanManifests(t *testing.T) {
	used := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "k8s"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		var k struct {
			Resources          []string
			Patches            []struct{ Path string }
			Configmapgenerator []struct{ Files []string } `json:"configMapGenerator"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dir := filepath.Dir(path)
		used[path] = true
		for _, r := range k.Resources {
			used[filepath.Join(dir, r)] = true
		}
		for _, p := range k.Patches {
			used[filepath.Join(dir, p.Path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(filepath.Join(root, "k8s"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		if filepath.Base(path) == "alerts.yaml" { // the compose profile's copy of the rules
			return nil
		}
		if !used[path] {
			t.Errorf("%s is in no kustomization", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
