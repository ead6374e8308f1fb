package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerfile: a static, non-root image with both binaries where
// compose runs them, built from the module with the download cached, and
// productsd as the entrypoint and its own health check.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)[1:]
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a runtime", len(stages))
	}
	builder, final := stages[0], stages[len(stages)-1]
	for _, want := range []string{"golang:", "CGO_ENABLED=0", "--mount=type=cache,target=/go/pkg/mod",
		"go build -trimpath -ldflags=\"-s -w\" -o /out/productsd ./cmd/productsd", "-o /out/loadtest ./cmd/loadtest"} {
		if !strings.Contains(builder, want) {
			t.Errorf("the build stage lacks %q", want)
		}
	}
	for _, re := range []string{`(?m)^USER 65532:65532$`, `(?m)^EXPOSE 8080$`,
		`(?m)^ENTRYPOINT \["/usr/local/bin/productsd"\]$`, `(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/productsd", "healthcheck"\]$`,
		`(?m)^COPY --from=build /out/productsd /out/loadtest /usr/local/bin/$`} {
		if !regexp.MustCompile(re).MatchString(final) {
			t.Errorf("the runtime stage does not match %s", re)
		}
	}
	p := loadCompose(t)
	if ep := p.Services["loadtest"].Entrypoint; len(ep) == 0 || ep[0] != "/usr/local/bin/loadtest" {
		t.Errorf("compose runs loadtest as %v, not where the image has it", ep)
	}
}

// TestDockerignore: the build context leaves out the history, build
// output and runtime files, and keeps what the build needs. The patterns
// are matched by moby/patternmatcher, the matcher Docker's builder uses.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		excluded bool
	}{
		{".git/HEAD", true},
		{"bin/productsd", true},
		{"cmd/productsd/productsd", true},
		{"cmd/loadtest/loadtest", true},
		{"productsd", true},
		{"cmd/productsd/dump.rdb", true},
		{"dump.rdb", true},
		{"tiercache/tiercache.test", true},
		{"go.mod", false},
		{"go.sum", false},
		{"cmd/productsd/main.go", false},
		{"tiercache/cache.go", false},
		{"products/migrations/00001_create_products.sql", false},
		{"loadtest/report.go", false},
		{"internal/testenv/testenv.go", false},
	} {
		got, err := pm.MatchesOrParentMatches(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.excluded {
			t.Errorf("%s excluded from the build context: got %v, want %v", tc.path, got, tc.excluded)
		}
	}
}
