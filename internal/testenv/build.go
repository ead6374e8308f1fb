package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string // "dir pkg" -> binary
}

// Build compiles the main package pkg ("./cmd/productsd") of the module in
// dir once per test process and returns the binary's path. Call
// RemoveBuilds from TestMain when the tests are done.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	key := dir + " " + pkg
	if bin, ok := builds.bins[key]; ok {
		return bin
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "testenv-bin-")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		builds.dir, builds.bins = d, map[string]string{}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(builds.bins)))
	cmd := exec.Command(goBin, "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", pkg, err, out)
	}
	builds.bins[key] = bin
	return bin
}

// RemoveBuilds deletes the binaries Build made.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
}
