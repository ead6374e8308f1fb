package loadtest

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/internal/testenv"
)

func TestParseRedisCPU(t *testing.T) {
	t.Parallel()
	got, err := parseRedisCPU("# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n")
	if err != nil || got != 3.75 {
		t.Fatalf("got %v, %v; want 3.75", got, err)
	}
	if _, err := parseRedisCPU("# CPU\r\nused_cpu_sys:1.5\r\n"); err == nil {
		t.Fatal("no used_cpu_user: got nil error")
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	stat := "4242 (postgres: a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 125 0 0 20 0 1 0 100 0 0"
	got, err := parseProcStat(stat)
	if err != nil || got != 3.75 {
		t.Fatalf("got %v, %v; want 3.75 (375 ticks)", got, err)
	}
	if _, err := parseProcStat("4242 (x) S 1 2"); err == nil {
		t.Fatal("short stat: got nil error")
	}
	// This very process, read for real.
	if secs, err := procCPU(os.Getpid()); err != nil || secs < 0 {
		t.Fatalf("procCPU(self) = %v, %v", secs, err)
	}
}

func TestLocalDatabase(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]bool{
		"postgres://u@127.0.0.1:5432/db":     true,
		"postgres://u@localhost/db":          true,
		"postgres://u@[::1]:5432/db":         true,
		"postgres:///db?host=/var/run/pg":    true,
		"postgres://u@db.example.com:5432/x": false,
		"postgres://u@10.1.2.3/x":            false,
	} {
		if got := localDatabase(u); got != want {
			t.Errorf("localDatabase(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestCPUDelta: parts and the total per request; a part not measured
// says why, leaves the total incomplete and fails its threshold.
func TestCPUDelta(t *testing.T) {
	t.Parallel()
	r1, r2 := 1.0, 1.5
	m := &cpuMeter{rdb: nil, pgNote: "PostgreSQL is not on this machine"}
	c := m.delta(cpuSnapshot{redis: &r1}, cpuSnapshot{redis: &r2},
		map[string]float64{"a": 10, "b": 20}, map[string]float64{"a": 11, "b": 21}, 1000)
	if !c.Replicas.Measured || c.Replicas.USPerReq != 2000 || c.Redis.Measured || c.Postgres.Measured || c.Complete {
		t.Fatalf("got %+v", c)
	}
	if c.Postgres.Note != "PostgreSQL is not on this machine" || c.Redis.Note == "" {
		t.Fatalf("notes: %+v", c)
	}
	if v := c.component("total"); !math.IsNaN(v) {
		t.Fatalf("total of an incomplete measurement: got %v, want NaN", v)
	}
	s := &Summary{CPU: c}
	th, _ := ParseThreshold("cpu_per_request{component:total}<1000000")
	if s.Evaluate([]Threshold{th}) || s.Thresholds[0].Actual != 0 {
		t.Fatalf("got %+v, want a failed threshold with actual 0", s.Thresholds)
	}
	// A target that vanished leaves the replicas unmeasured.
	c = m.delta(cpuSnapshot{}, cpuSnapshot{}, map[string]float64{"a": 1}, map[string]float64{"a": 2, "b": 3}, 10)
	if c.Replicas.Measured {
		t.Fatalf("got %+v, want replicas not measured", c.Replicas)
	}
}

// TestCPUMeterReal reads a real Redis and the backends of a real database
// on this machine: a backend that works during the measurement shows CPU.
func TestCPUMeterReal(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	ctx := context.Background()
	m := newCPUMeter(ctx, testenv.RedisURL(), dbURL)
	defer m.close()
	if m.rdb == nil || m.pg == nil {
		t.Fatalf("meter measures nothing: %+v", m)
	}
	worker, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close(ctx)
	before := m.snapshot(ctx)
	if _, err := worker.Exec(ctx, "SELECT count(*) FROM generate_series(1, 3000000)"); err != nil {
		t.Fatal(err)
	}
	after := m.snapshot(ctx)
	c := m.delta(before, after, map[string]float64{"x": 0}, map[string]float64{"x": 0}, 1)
	if !c.Redis.Measured || !c.Postgres.Measured || c.Postgres.Seconds <= 0 || !c.Complete {
		t.Fatalf("got %+v, want Redis measured and the busy backend's CPU", c)
	}
	if !strings.Contains(c.Text(), "postgres ") {
		t.Fatalf("text %q", c.Text())
	}
}
