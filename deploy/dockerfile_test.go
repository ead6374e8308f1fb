package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
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

// TestDockerignore: the build context leaves out the history and keeps
// what the build needs.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	if !slices.Contains(patterns, ".git") {
		t.Error(".dockerignore does not exclude .git")
	}
	for _, p := range patterns {
		for _, n := range []string{"go.mod", "go.sum", "cmd", "tiercache", "products", "loadtest", "internal"} {
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "/"), n); ok && !strings.HasPrefix(p, "!") {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", p, n)
			}
		}
	}
}
