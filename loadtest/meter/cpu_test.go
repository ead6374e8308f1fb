package meter

import (
	"context"
	"os"
	"testing"
	"time"

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

// TestProcCPU reads this very process's CPU time for real: it grows while
// the process works (a busy machine may give it little time, so it spins
// until the time grows, up to 30 s).
func TestProcCPU(t *testing.T) {
	t.Parallel()
	before, err := procCPU(os.Getpid())
	if err != nil || before < 0 {
		t.Fatalf("procCPU(self) = %v, %v", before, err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		after, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("procCPU(self) stayed at %v s over 30 s of spinning", before)
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

// TestCPUMeterReal reads a real Redis and the backends of a real database
// on this machine: a backend that works during the measurement shows CPU.
func TestCPUMeterReal(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	_, dbURL := testenv.Schema(t)
	ctx := context.Background()
	m := NewCPU(ctx, testenv.RedisURL(), dbURL)
	defer m.Close()
	if m.rdb == nil || m.pg == nil {
		t.Fatalf("meter measures nothing: %+v", m)
	}
	worker, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close(ctx)
	before := m.Snapshot(ctx)
	if _, err := worker.Exec(ctx, "SELECT count(*) FROM generate_series(1, 3000000)"); err != nil {
		t.Fatal(err)
	}
	after := m.Snapshot(ctx)
	if before.Redis == nil || after.Redis == nil || before.Postgres == nil || after.Postgres == nil {
		t.Fatalf("got %+v then %+v, want Redis and the backends read", before, after)
	}
	var secs float64
	for pid, a := range after.Postgres {
		secs += a - before.Postgres[pid]
	}
	if secs <= 0 {
		t.Fatalf("backends' CPU grew by %v s, want the busy backend's CPU", secs)
	}
}
