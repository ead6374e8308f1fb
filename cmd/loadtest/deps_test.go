package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Which packages of the load generator may link what. The engine
// (package loadtest) knows the system under test only through HTTP, as k6
// does: it links no package of the product service, the cache or a
// database client. The harness packages around it start processes and
// reach Redis and PostgreSQL directly, so only they import pgx and
// go-redis: loadtest/cluster (a private redis-server, throwaway
// databases, cleaning a namespace's keys), loadtest/meter (CPU of Redis
// and of the database's backends, the stored versions the lost-write
// check reads) and loadtest/chaos (DEBUG SLEEP, pg_terminate_backend).
// The command links neither the product service nor the cache.
const (
	module       = "github.com/tiercache/productcache/"
	pgxPkg       = "github.com/jackc/pgx/v5"
	goRedisPkg   = "github.com/redis/go-redis/v9"
	enginePkg    = module + "loadtest"
	harnessPkgs  = "loadtest/cluster loadtest/meter loadtest/chaos"
	domainPrefix = module + "products"
	cachePrefix  = module + "tiercache"
)

// TestLoadGeneratorSpeaksOnlyHTTP checks the rule above on the import
// graph `go list -deps` reports for the engine and for cmd/loadtest.
func TestLoadGeneratorSpeaksOnlyHTTP(t *testing.T) {
	t.Parallel()
	engine := listDeps(t, "../../loadtest")
	for pkg := range engine {
		if pkg != enginePkg && (strings.HasPrefix(pkg, module) || isDBClient(pkg)) {
			t.Errorf("the engine links %s (imported by %v)", pkg, importers(pkg, engine))
		}
	}
	deps := listDeps(t, ".")
	allowed := map[string]bool{}
	for _, p := range strings.Fields(harnessPkgs) {
		allowed[module+p] = true
	}
	for pkg, imports := range deps {
		if strings.HasPrefix(pkg, domainPrefix) || strings.HasPrefix(pkg, cachePrefix) {
			t.Errorf("cmd/loadtest links %s (imported by %v)", pkg, importers(pkg, deps))
		}
		if !strings.HasPrefix(pkg, module) || allowed[pkg] {
			continue
		}
		for _, imp := range imports {
			if isDBClient(imp) {
				t.Errorf("%s imports %s; only %s may", pkg, imp, harnessPkgs)
			}
		}
	}
	if _, ok := deps[enginePkg]; !ok {
		t.Fatalf("go list -deps . does not list %s: the check reads the wrong graph", enginePkg)
	}
}

func isDBClient(pkg string) bool {
	return pkg == pgxPkg || strings.HasPrefix(pkg, pgxPkg+"/") || pkg == goRedisPkg || strings.HasPrefix(pkg, goRedisPkg+"/")
}

// listDeps is every package dir's binary links, with its direct imports.
func listDeps(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}", dir).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", dir, err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		deps[pkg] = strings.Fields(imports)
	}
	return deps
}

func importers(pkg string, deps map[string][]string) []string {
	var by []string
	for p, imports := range deps {
		for _, imp := range imports {
			if imp == pkg {
				by = append(by, p)
			}
		}
	}
	return by
}
