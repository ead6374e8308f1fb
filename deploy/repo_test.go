package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maxTrackedSize is the largest file git may track: sources, manifests
// and a screenshot or two fit; build output and data dumps do not.
const maxTrackedSize = 1 << 20

// binaryMagic are the first bytes of the executable formats a build on
// any platform writes (ELF, Mach-O 32/64-bit both byte orders, fat
// Mach-O, PE).
var binaryMagic = [][]byte{
	[]byte("\x7fELF"),
	{0xfe, 0xed, 0xfa, 0xce}, {0xce, 0xfa, 0xed, 0xfe},
	{0xfe, 0xed, 0xfa, 0xcf}, {0xcf, 0xfa, 0xed, 0xfe},
	{0xca, 0xfe, 0xba, 0xbe},
	[]byte("MZ"),
}

// TestNoBuildOutputTracked: no file git tracks is over 1 MiB, an
// executable binary, or a Redis dump: build output belongs in bin/ (which
// .gitignore keeps out), never in the repository.
func TestNoBuildOutputTracked(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v)", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if problem := buildOutput(filepath.Join(root, name)); problem != "" {
			t.Errorf("%s is tracked but %s", name, problem)
		}
	}
}

// buildOutput says why the file at path looks like build output, or ""
// when it does not (or is gone from the working tree).
func buildOutput(path string) string {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	if fi.Size() > maxTrackedSize {
		return "is over 1 MiB"
	}
	if strings.HasSuffix(path, ".rdb") || strings.HasSuffix(path, ".aof") {
		return "is a Redis dump"
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	for _, m := range binaryMagic {
		if bytes.HasPrefix(head[:n], m) {
			return "is an executable binary"
		}
	}
	return ""
}

// TestBuildOutputDetected: the check above recognises what it must.
func TestBuildOutputDetected(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		body []byte
		want bool
	}{
		{"productsd", []byte("\x7fELF\x02\x01\x01"), true},
		{"tool.exe", []byte("MZ\x90\x00"), true},
		{"macho", []byte{0xcf, 0xfa, 0xed, 0xfe, 7}, true},
		{"dump.rdb", []byte("REDIS0011"), true},
		{"big.json", bytes.Repeat([]byte("x"), maxTrackedSize+1), true},
		{"main.go", []byte("package main\n"), false},
		{"run.sh", []byte("#!/bin/sh\necho hi\n"), false},
	} {
		if got := buildOutput(write(tc.name, tc.body)) != ""; got != tc.want {
			t.Errorf("%s flagged: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDesignCitationsResolve: every "docs/design.md §N" a tracked file
// cites names a section of docs/design.md, and nothing cites a design
// document or review outside the repository.
func TestDesignCitationsResolve(t *testing.T) {
	design, err := os.ReadFile(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^##+ (\d+(?:\.\d+)?)\.? `).FindAllStringSubmatch(string(design), -1) {
		sections[m[1]] = true
	}
	if !sections["3.13"] || !sections["4"] {
		t.Fatalf("docs/design.md sections %v: the headings are not numbered as expected", sections)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v)", err)
	}
	cite := regexp.MustCompile(`docs/design\.md §(\d+(?:\.\d+)?)`)
	outside := regexp.MustCompile(`DESIGN §|review bugs? \d|\.\./shared|STYLE rule`)
	rules := docRules(t)
	ruleCite := regexp.MustCompile(`(?i)\brules? (\d+)\b`)
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue
		}
		for _, m := range cite.FindAllSubmatch(b, -1) {
			if !sections[string(m[1])] {
				t.Errorf("%s cites docs/design.md §%s, which has no such section", name, m[1])
			}
		}
		for _, m := range ruleCite.FindAllSubmatch(b, -1) {
			if !rules[string(m[1])] {
				t.Errorf("%s cites %q, which tiercache/doc.go's rule table does not have", name, m[0])
			}
		}
		if name != "deploy/repo_test.go" && outside.Match(b) {
			t.Errorf("%s cites %q, which a reader of the repository cannot open", name, outside.Find(b))
		}
	}
}

// docRules returns the numbers of the rules in tiercache/doc.go's table
// ("//\t<n> <rule> <tests>"), which match docs/design.md's §3.<n>.
func docRules(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "tiercache", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\t(\d+) +\S`).FindAllSubmatch(doc, -1) {
		rules[string(m[1])] = true
	}
	if !rules["1"] || !rules["13"] {
		t.Fatalf("tiercache/doc.go rules %v: the table is not where it was expected", rules)
	}
	return rules
}
