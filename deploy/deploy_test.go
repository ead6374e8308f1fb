package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tiercache/productcache/internal/testenv"
)

// root is the repository root: this module sits in deploy/.
const root = ".."

// productsd builds cmd/productsd (in the service's module) once and
// returns the binary's path.
func productsd(t *testing.T) string {
	t.Helper()
	return testenv.Build(t, root, "./cmd/productsd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilds()
	os.Exit(code)
}

// settings returns productsd's settings and their defaults, as `productsd
// env` prints them: the one list in cmd/productsd, not a copy.
func settings(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command(productsd(t), "env").Output()
	if err != nil {
		t.Fatalf("productsd env: %v", err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("productsd env: bad line %q", sc.Text())
		}
		m[k] = v
	}
	if len(m) < 10 {
		t.Fatalf("productsd env printed %d settings", len(m))
	}
	return m
}

// checkEnv fails for a name productsd does not read, and for a required
// one that is missing.
func checkEnv(t *testing.T, where string, env map[string]string, known map[string]string) {
	t.Helper()
	for k := range env {
		if _, ok := known[k]; !ok {
			t.Errorf("%s sets %s, which productsd does not read (productsd env lists its settings)", where, k)
		}
	}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL", "CACHE_MODE", "CACHE_NAMESPACE", "REPLICA_ID", "REDIS_MODE", "SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
		if _, ok := env[k]; !ok {
			t.Errorf("%s does not set %s", where, k)
		}
	}
}
