package loadtest

import (
	"math"
	"testing"
)

// TestCPUDelta: parts and the total per request; a part not measured
// says why, leaves the total incomplete and fails its threshold.
func TestCPUDelta(t *testing.T) {
	t.Parallel()
	r1, r2 := 1.0, 1.5
	pgNote := "PostgreSQL is not on this machine"
	c := cpuDelta(CPUSnapshot{Redis: &r1, PostgresNote: pgNote}, CPUSnapshot{Redis: &r2, PostgresNote: pgNote},
		map[string]float64{"a": 10, "b": 20}, map[string]float64{"a": 11, "b": 21}, 1000)
	if !c.Replicas.Measured || c.Replicas.USPerReq != 2000 || !c.Redis.Measured || c.Redis.USPerReq != 500 || c.Postgres.Measured || c.Complete {
		t.Fatalf("got %+v", c)
	}
	if c.Postgres.Note != pgNote || c.Redis.Note == "" {
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
	c = cpuDelta(CPUSnapshot{}, CPUSnapshot{}, map[string]float64{"a": 1}, map[string]float64{"a": 2, "b": 3}, 10)
	if c.Replicas.Measured {
		t.Fatalf("got %+v, want replicas not measured", c.Replicas)
	}
}
