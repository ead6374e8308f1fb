package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestWarnOncePerIntervalPerKind(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Second)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range 400 {
		l.Warn("dial", "redis unreachable")
	}
	l.Warn("publish", "publish failed")
	now = now.Add(time.Second)
	l.Warn("dial", "redis unreachable")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (first dial, first publish, dial after the interval):\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "suppressed=399") {
		t.Fatalf("the line after the interval: got %q, want suppressed=399", lines[2])
	}
	if strings.Contains(lines[0], "suppressed") {
		t.Fatalf("the first line: got %q, want no suppressed count", lines[0])
	}
}
