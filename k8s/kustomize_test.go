package k8s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// This file is a small kustomize: enough of `kubectl kustomize` to build the
// overlays here and check them without a cluster or a kubectl binary. It
// supports resources (files and directories), configMapGenerator and
// secretGenerator (create, merge, replace), patches (strategic merge and
// JSON 6902, by file or inline, with or without a target), namespace,
// labels, replicas and images. Anything else in a kustomization.yaml fails
// to parse (the struct is decoded strictly), so a typo such as "resource:"
// is caught instead of silently ignored. Generated names keep no hash
// suffix: references are checked by name, which is what kustomize rewrites.

// kustomization is the part of kustomize.config.k8s.io/v1beta1 supported.
type kustomization struct {
	APIVersion         string            `json:"apiVersion"`
	Kind               string            `json:"kind"`
	Namespace          string            `json:"namespace,omitempty"`
	Labels             []labelsEntry     `json:"labels,omitempty"`
	Resources          []string          `json:"resources,omitempty"`
	ConfigMapGenerator []generator       `json:"configMapGenerator,omitempty"`
	SecretGenerator    []generator       `json:"secretGenerator,omitempty"`
	Patches            []patchEntry      `json:"patches,omitempty"`
	Replicas           []replicasEntry   `json:"replicas,omitempty"`
	Images             []imageEntry      `json:"images,omitempty"`
	CommonAnnotations  map[string]string `json:"commonAnnotations,omitempty"`
}

type labelsEntry struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	IncludeTemplates bool              `json:"includeTemplates,omitempty"`
}

type generator struct {
	Name     string   `json:"name"`
	Behavior string   `json:"behavior,omitempty"`
	Type     string   `json:"type,omitempty"`
	Literals []string `json:"literals,omitempty"`
	Files    []string `json:"files,omitempty"`
	Envs     []string `json:"envs,omitempty"`
}

type patchEntry struct {
	Path   string       `json:"path,omitempty"`
	Patch  string       `json:"patch,omitempty"`
	Target *patchTarget `json:"target,omitempty"`
}

type patchTarget struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type replicasEntry struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

type imageEntry struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// resource is one object of a build and the file it came from.
type resource struct {
	obj  map[string]any
	from string
}

func (r resource) kind() string      { return asString(r.obj["kind"]) }
func (r resource) name() string      { return asString(dig(r.obj, "metadata", "name")) }
func (r resource) namespace() string { return asString(dig(r.obj, "metadata", "namespace")) }
func (r resource) id() string        { return r.kind() + "/" + r.name() }

// group and version split apiVersion ("apps/v1"; the core group is "").
func (r resource) group() string {
	g, _, ok := strings.Cut(asString(r.obj["apiVersion"]), "/")
	if !ok {
		return ""
	}
	return g
}

// build resolves the kustomization in dir, as `kubectl kustomize dir` would,
// and returns its objects, or every problem found.
func build(dir string) ([]resource, error) {
	return buildDepth(dir, 0)
}

func buildDepth(dir string, depth int) ([]resource, error) {
	if depth > 10 {
		return nil, fmt.Errorf("%s: kustomizations nest more than 10 deep (a cycle?)", dir)
	}
	k, err := readKustomization(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	var out []resource
	add := func(rs ...resource) {
		for _, r := range rs {
			if i := find(out, r.kind(), r.name()); i >= 0 {
				errs = append(errs, fmt.Errorf("%s: %s is defined twice (%s and %s)", dir, r.id(), out[i].from, r.from))
				continue
			}
			out = append(out, r)
		}
	}
	for _, ref := range k.Resources {
		rs, err := loadResource(dir, ref, depth)
		errs = append(errs, err)
		add(rs...)
	}
	for _, g := range k.ConfigMapGenerator {
		out, err = generate(dir, "ConfigMap", g, out)
		errs = append(errs, err)
	}
	for _, g := range k.SecretGenerator {
		out, err = generate(dir, "Secret", g, out)
		errs = append(errs, err)
	}
	for i, p := range k.Patches {
		errs = append(errs, applyPatch(dir, i, p, out))
	}
	errs = append(errs, transform(dir, k, out))
	return out, errors.Join(errs...)
}

func readKustomization(dir string) (*kustomization, error) {
	path := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: no kustomization.yaml: %w", dir, err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w (field unknown to kustomize, or to this test's resolver)", path, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization",
			path, k.APIVersion, k.Kind)
	}
	return &k, nil
}

// loadResource loads a resources entry: a directory with its own
// kustomization, or a file of one or more objects.
func loadResource(dir, ref string, depth int) ([]resource, error) {
	if strings.Contains(ref, "://") || strings.HasPrefix(ref, "github.com/") {
		return nil, fmt.Errorf("%s: remote resource %q: keep every resource in the repository", dir, ref)
	}
	path := filepath.Join(dir, ref)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: resource %q: %w", dir, ref, err)
	}
	if fi.IsDir() {
		return buildDepth(path, depth+1)
	}
	docs, err := readDocs(path)
	if err != nil {
		return nil, err
	}
	var out []resource
	for i, d := range docs {
		r := resource{obj: asMap(d), from: path}
		if r.obj == nil || r.obj["apiVersion"] == nil || r.kind() == "" || r.name() == "" {
			return nil, fmt.Errorf("%s: document %d is not an object with apiVersion, kind and metadata.name", path, i)
		}
		out = append(out, r)
	}
	return out, nil
}

func find(rs []resource, kind, name string) int {
	return slices.IndexFunc(rs, func(r resource) bool { return r.kind() == kind && r.name() == name })
}

// generate makes or merges a ConfigMap or Secret. Data is kept as plain
// strings (a Secret's are not base64-encoded here).
func generate(dir, kind string, g generator, rs []resource) ([]resource, error) {
	data := make(map[string]any)
	for _, lit := range g.Literals {
		k, v, ok := strings.Cut(lit, "=")
		if !ok || k == "" {
			return rs, fmt.Errorf("%s: %s %s: literal %q is not KEY=VALUE", dir, kind, g.Name, lit)
		}
		data[k] = v
	}
	for _, f := range append(slices.Clone(g.Files), g.Envs...) {
		src := f
		if _, after, ok := strings.Cut(f, "="); ok {
			src = after
		}
		if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
			return rs, fmt.Errorf("%s: %s %s: %w", dir, kind, g.Name, err)
		}
		data[filepath.Base(src)] = unknownValue
	}
	i := find(rs, kind, g.Name)
	switch g.Behavior {
	case "", "create":
		if i >= 0 {
			return rs, fmt.Errorf("%s: %s %s already exists (from %s); use behavior: merge", dir, kind, g.Name, rs[i].from)
		}
		obj := map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": g.Name}, "data": data}
		return append(rs, resource{obj: obj, from: filepath.Join(dir, "kustomization.yaml")}), nil
	case "merge", "replace":
		if i < 0 {
			return rs, fmt.Errorf("%s: %s %s has behavior %s but no base defines it", dir, kind, g.Name, g.Behavior)
		}
		old := asMap(rs[i].obj["data"])
		if g.Behavior == "replace" || old == nil {
			old = make(map[string]any)
		}
		for k, v := range data {
			old[k] = v
		}
		rs[i].obj["data"] = old
		return rs, nil
	}
	return rs, fmt.Errorf("%s: %s %s: unknown behavior %q", dir, kind, g.Name, g.Behavior)
}

// applyPatch applies one patches entry to the objects it targets, and fails
// if it targets none: kustomize would fail, or silently do nothing.
func applyPatch(dir string, n int, p patchEntry, rs []resource) error {
	where := fmt.Sprintf("%s: patches[%d]", dir, n)
	text := []byte(p.Patch)
	switch {
	case p.Path != "" && p.Patch != "":
		return fmt.Errorf("%s: both path and patch", where)
	case p.Path != "":
		data, err := os.ReadFile(filepath.Join(dir, p.Path))
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		text, where = data, where+" ("+p.Path+")"
	case p.Patch == "":
		return fmt.Errorf("%s: neither path nor patch", where)
	}
	docs, err := parseDocs(where, text)
	if err != nil {
		return err
	}
	if len(docs) == 1 {
		if ops := asList(docs[0]); ops != nil {
			return applyJSONPatch(where, p.Target, ops, rs)
		}
	}
	for _, d := range docs {
		patch := asMap(d)
		if patch == nil {
			return fmt.Errorf("%s: a strategic merge patch must be an object", where)
		}
		targets, err := patchTargets(where, p.Target, resource{obj: patch}, rs)
		if err != nil {
			return err
		}
		for _, i := range targets {
			if err := mergeObject(rs[i].obj, patch, ""); err != nil {
				return fmt.Errorf("%s: %s: %w", where, rs[i].id(), err)
			}
		}
	}
	return nil
}

// patchTargets returns the indexes of the objects a patch applies to: those
// matching target, or the patch's own kind and name.
func patchTargets(where string, t *patchTarget, patch resource, rs []resource) ([]int, error) {
	if t == nil {
		if patch.kind() == "" || patch.name() == "" {
			return nil, fmt.Errorf("%s: a patch without target needs kind and metadata.name", where)
		}
		t = &patchTarget{Kind: patch.kind(), Name: patch.name()}
	}
	var out []int
	for i, r := range rs {
		if matches(t.Kind, r.kind()) && matches(t.Name, r.name()) && matches(t.Namespace, r.namespace()) &&
			(t.Group == "" || t.Group == r.group()) {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: targets %s/%s, which no resource of the build is", where, t.Kind, t.Name)
	}
	return out, nil
}

// matches treats a target field as kustomize does: empty matches anything,
// otherwise an anchored regular expression.
func matches(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	return err == nil && re.MatchString(s)
}

// mergeKeys are the strategic-merge keys of the lists these manifests patch.
// Lists not named here are replaced, as for most list fields.
var mergeKeys = map[string]string{
	"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
	"volumeMounts": "name", "imagePullSecrets": "name", "topologySpreadConstraints": "topologyKey",
	"ports": "containerPort", "tolerations": "key",
}

// mergeObject applies a strategic merge patch: maps merge key by key, lists
// with a merge key merge element by element, a null value deletes.
func mergeObject(dst, patch map[string]any, path string) error {
	for k, pv := range patch {
		if strings.HasPrefix(k, "$") {
			return fmt.Errorf("%s: directive %s is not supported by this resolver", path+"/"+k, k)
		}
		if pv == nil {
			delete(dst, k)
			continue
		}
		dv, ok := dst[k]
		switch pvt := pv.(type) {
		case map[string]any:
			dm := asMap(dv)
			if !ok || dm == nil {
				dst[k] = pvt
				continue
			}
			if err := mergeObject(dm, pvt, path+"/"+k); err != nil {
				return err
			}
		case []any:
			key := mergeKeys[k]
			if key == "" || !ok {
				dst[k] = pvt
				continue
			}
			merged, err := mergeList(asList(dv), pvt, key, path+"/"+k)
			if err != nil {
				return err
			}
			dst[k] = merged
		default:
			dst[k] = pv
		}
	}
	return nil
}

func mergeList(dst, patch []any, key, path string) ([]any, error) {
	for _, pe := range patch {
		pm := asMap(pe)
		if pm == nil || pm[key] == nil {
			return nil, fmt.Errorf("%s: element %v has no merge key %s", path, pe, key)
		}
		i := slices.IndexFunc(dst, func(de any) bool { return asString(dig(de, key)) == asString(pm[key]) })
		if i < 0 {
			dst = append(dst, pm)
			continue
		}
		if err := mergeObject(asMap(dst[i]), pm, path+"/"+asString(pm[key])); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// applyJSONPatch applies RFC 6902 add, replace and remove operations.
func applyJSONPatch(where string, t *patchTarget, ops []any, rs []resource) error {
	if t == nil {
		return fmt.Errorf("%s: a JSON 6902 patch needs a target", where)
	}
	targets, err := patchTargets(where, t, resource{}, rs)
	if err != nil {
		return err
	}
	for _, i := range targets {
		for _, o := range ops {
			op, path := asString(dig(o, "op")), asString(dig(o, "path"))
			if err := jsonPatchOp(rs[i].obj, op, path, dig(o, "value")); err != nil {
				return fmt.Errorf("%s: %s: %s %s: %w", where, rs[i].id(), op, path, err)
			}
		}
	}
	return nil
}

func jsonPatchOp(obj map[string]any, op, path string, value any) error {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, p := range parts {
		parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
	}
	parent := dig(obj, parts[:len(parts)-1]...)
	last := parts[len(parts)-1]
	switch x := parent.(type) {
	case map[string]any:
		_, exists := x[last]
		switch {
		case op == "add":
			x[last] = value
		case op == "replace" && exists:
			x[last] = value
		case op == "remove" && exists:
			delete(x, last)
		case op == "replace" || op == "remove":
			return errors.New("the path does not exist")
		default:
			return fmt.Errorf("unsupported op %q", op)
		}
		return nil
	case []any:
		i, err := strconv.Atoi(last)
		if op != "replace" || err != nil || i < 0 || i >= len(x) {
			return fmt.Errorf("only replace of an existing list element is supported")
		}
		x[i] = value
		return nil
	}
	return errors.New("the parent of the path does not exist")
}

// transform applies namespace, labels, annotations, replicas and images.
func transform(dir string, k *kustomization, rs []resource) error {
	var errs []error
	for _, r := range rs {
		meta := asMap(r.obj["metadata"])
		if k.Namespace != "" && !clusterScoped[r.kind()] {
			meta["namespace"] = k.Namespace
		}
		for _, l := range k.Labels {
			setAll(meta, "labels", l.Pairs)
			if l.IncludeTemplates || l.IncludeSelectors {
				if tmpl := asMap(dig(r.obj, "spec", "template", "metadata")); tmpl != nil {
					setAll(tmpl, "labels", l.Pairs)
				}
			}
			if l.IncludeSelectors {
				if sel := asMap(dig(r.obj, "spec", "selector")); sel != nil {
					target := sel
					if r.kind() != "Service" {
						target = asMap(sel["matchLabels"])
					}
					for key, v := range l.Pairs {
						target[key] = v
					}
				}
			}
		}
		setAll(meta, "annotations", k.CommonAnnotations)
	}
	for _, rep := range k.Replicas {
		i := slices.IndexFunc(rs, func(r resource) bool {
			return r.name() == rep.Name && slices.Contains([]string{"Deployment", "StatefulSet", "ReplicaSet"}, r.kind())
		})
		if i < 0 {
			errs = append(errs, fmt.Errorf("%s: replicas: no Deployment or StatefulSet %s", dir, rep.Name))
			continue
		}
		asMap(rs[i].obj["spec"])["replicas"] = float64(rep.Count)
	}
	for _, img := range k.Images {
		if n := setImage(rs, img); n == 0 {
			errs = append(errs, fmt.Errorf("%s: images: %s matches no container image (already renamed by a base?)", dir, img.Name))
		}
	}
	return errors.Join(errs...)
}

func setAll(m map[string]any, field string, kv map[string]string) {
	if len(kv) == 0 {
		return
	}
	sub := asMap(m[field])
	if sub == nil {
		sub = make(map[string]any)
		m[field] = sub
	}
	for k, v := range kv {
		sub[k] = v
	}
}

var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "PriorityClass": true,
	"StorageClass": true, "CustomResourceDefinition": true, "PersistentVolume": true,
}

// setImage rewrites the images named img.Name and returns how many it did.
func setImage(rs []resource, img imageEntry) int {
	n := 0
	for _, r := range rs {
		for _, c := range podContainers(r) {
			name, tag := splitImage(asString(c["image"]))
			if name != img.Name {
				continue
			}
			if img.NewName != "" {
				name = img.NewName
			}
			switch {
			case img.Digest != "":
				tag = "@" + img.Digest
			case img.NewTag != "":
				tag = ":" + img.NewTag
			}
			c["image"] = name + tag
			n++
		}
	}
	return n
}

// splitImage splits "repo/name:tag" or "repo/name@sha256:..." into the name
// and the rest (":tag", "@digest" or "").
func splitImage(image string) (string, string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i], image[i:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i:]
	}
	return image, ""
}

// podSpec returns the pod spec of a workload, or nil.
func podSpec(r resource) map[string]any {
	switch r.kind() {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return asMap(dig(r.obj, "spec", "template", "spec"))
	case "CronJob":
		return asMap(dig(r.obj, "spec", "jobTemplate", "spec", "template", "spec"))
	case "Pod":
		return asMap(r.obj["spec"])
	}
	return nil
}

// podContainers returns the init containers and containers of a workload.
func podContainers(r resource) []map[string]any {
	spec := podSpec(r)
	var out []map[string]any
	for _, field := range []string{"initContainers", "containers"} {
		for _, c := range asList(spec[field]) {
			out = append(out, asMap(c))
		}
	}
	return out
}
