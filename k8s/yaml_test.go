package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// designEnv is the canonical list of productsd's environment variables,
// DESIGN §5. A deployment file that sets any other name for productsd is
// wrong: productsd would ignore it.
var designEnv = []string{
	"ADDR", "DATABASE_URL", "REDIS_URL", "CACHE_MODE", "CACHE_L1_SIZE", "CACHE_L1_TTL",
	"CACHE_L2_TTL", "CACHE_NEGATIVE_TTL", "CACHE_NAMESPACE", "REPLICA_ID", "LOG_LEVEL",
}

// requiredEnv are the names every productsd replica of a multi-replica
// deployment must set explicitly: the defaults point at 127.0.0.1 or are
// per-process.
var requiredEnv = []string{"ADDR", "DATABASE_URL", "REDIS_URL", "CACHE_MODE", "CACHE_NAMESPACE", "REPLICA_ID"}

// readDocs parses every YAML document of a file (split on "\n---"), skipping
// empty ones.
func readDocs(path string) ([]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseDocs(path, data)
}

func parseDocs(name string, data []byte) ([]any, error) {
	var docs []any
	for i, part := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if isBlankYAML(part) {
			continue
		}
		var doc any
		if err := yaml.Unmarshal(part, &doc); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// isBlankYAML reports whether a document holds only white space and comments.
func isBlankYAML(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// dig walks maps by key and lists by index ("0", "1", ...) and returns nil
// where the path does not exist.
func dig(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// asString renders a scalar as YAML would have written it; numbers parsed
// from YAML are float64.
func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func asStrings(v any) []string {
	var out []string
	for _, e := range asList(v) {
		out = append(out, asString(e))
	}
	return out
}

// checkConfig checks the values of productsd's settings, as far as they are
// known (a value from a Secret created outside the files is not), for a
// deployment of the given number of replicas.
func checkConfig(where string, env map[string]string, replicas int) error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s=%q: %s", where, name, env[name], fmt.Sprintf(format, args...)))
	}
	for name := range env {
		if !slices.Contains(designEnv, name) {
			errs = append(errs, fmt.Errorf("%s: %s is not a productsd setting (DESIGN §5 names: %s)",
				where, name, strings.Join(designEnv, ", ")))
		}
	}
	for _, name := range requiredEnv {
		if _, ok := env[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: %s is not set", where, name))
		}
	}
	if v, ok := env["ADDR"]; ok {
		if _, err := addrPort(v); err != nil {
			bad("ADDR", "%v", err)
		}
	}
	mode, ok := env["CACHE_MODE"]
	switch {
	case ok && !slices.Contains([]string{"tiered", "redis", "local", "none"}, mode):
		bad("CACHE_MODE", "want tiered, redis, local or none")
	case mode == "local" && replicas > 1:
		bad("CACHE_MODE", "L1-only is correct for one replica only, and this deployment runs %d", replicas)
	}
	if v, ok := env["CACHE_L1_SIZE"]; ok {
		if n, err := strconv.Atoi(v); err != nil || n <= 0 {
			bad("CACHE_L1_SIZE", "want a positive integer")
		}
	}
	ttl := make(map[string]time.Duration)
	for _, name := range []string{"CACHE_L1_TTL", "CACHE_L2_TTL", "CACHE_NEGATIVE_TTL"} {
		if v, ok := env[name]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				bad(name, "want a positive Go duration")
			}
			ttl[name] = d
		}
	}
	if l1, l2 := ttl["CACHE_L1_TTL"], ttl["CACHE_L2_TTL"]; l1 > 0 && l2 > 0 && l1 > l2 {
		bad("CACHE_L1_TTL", "exceeds CACHE_L2_TTL %v; tiercache.New rejects it", l2)
	}
	if v, ok := env["LOG_LEVEL"]; ok && !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
		bad("LOG_LEVEL", "want debug, info, warn or error")
	}
	for name, schemes := range map[string][]string{
		"DATABASE_URL": {"postgres", "postgresql"}, "REDIS_URL": {"redis", "rediss", "unix"},
	} {
		if v, ok := env[name]; ok && v != unknownValue {
			if u, err := url.Parse(v); err != nil || !slices.Contains(schemes, u.Scheme) {
				bad(name, "want a URL with scheme %s", strings.Join(schemes, " or "))
			}
		}
	}
	return errors.Join(errs...)
}

// unknownValue stands for a value the files do not show (a Secret created
// outside them, the pod name).
const unknownValue = "<unknown>"

// addrPort returns the port of a listen address such as ":8080".
func addrPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

// urlHostPort returns the host and port of a URL, with the scheme's default
// port.
func urlHostPort(raw string, defaultPort int) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, err
	}
	port := defaultPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, err
		}
	}
	return u.Hostname(), port, nil
}

// flagValue returns the argument after flag in args.
func flagValue(args []string, flag string) (string, bool) {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return "", false
	}
	return args[i+1], true
}

// checkRedisArgs checks that a redis-server command line turns persistence
// off: Redis here is a cache, and a restart must not bring back old values.
func checkRedisArgs(args []string) error {
	save, ok1 := flagValue(args, "--save")
	aof, ok2 := flagValue(args, "--appendonly")
	if !ok1 || save != "" || !ok2 || aof != "no" {
		return fmt.Errorf("redis command %q: want --save \"\" and --appendonly no (a cache keeps no persistence)", args)
	}
	return nil
}
