package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strconv"
)

// CPU is the processor time the measured part of a run cost, per request,
// by component: the targets (their process_cpu_seconds_total), Redis (the
// used_cpu_sys and used_cpu_user of INFO cpu) and PostgreSQL (the user and
// system time, from /proc, of the backends connected to the run's
// database). Total adds the parts that were measured; Complete says all
// three were.
type CPU struct {
	Replicas CPUPart `json:"replicas"`
	Redis    CPUPart `json:"redis"`
	Postgres CPUPart `json:"postgres"`
	// TotalUSPerReq is the sum of the measured parts, in microseconds per
	// request.
	TotalUSPerReq float64 `json:"total_us_per_request"`
	Complete      bool    `json:"complete"`
	// ByTarget is each target's CPU seconds over the measured part.
	ByTarget map[string]float64 `json:"by_target_seconds,omitempty"`
}

// CPUPart is one component's share of [CPU].
type CPUPart struct {
	Measured bool    `json:"measured"`
	Seconds  float64 `json:"cpu_seconds"`
	USPerReq float64 `json:"us_per_request"`
	// Note says why the part was not measured, or what it leaves out.
	Note string `json:"note,omitempty"`
}

// CPUMeter reads the processor time of the parts of the system under test
// that do not answer over HTTP (its Redis, its database's backends). The
// engine speaks only HTTP; the commands that set up a cluster supply one
// (loadtest/meter connects to Redis and PostgreSQL).
type CPUMeter interface {
	// Snapshot reads every part it measures; it never fails: a part it
	// cannot read is nil, with a note saying why.
	Snapshot(ctx context.Context) CPUSnapshot
}

// CPUSnapshot is one reading of a [CPUMeter]; absent parts are nil.
type CPUSnapshot struct {
	// Redis is the CPU seconds of the whole redis-server.
	Redis *float64
	// Postgres is the CPU seconds of each database backend, by pid.
	Postgres map[int]float64
	// RedisNote and PostgresNote say why a part is nil.
	RedisNote, PostgresNote string
}

// noCPUMeter measures nothing (no [RunOptions].CPU given).
type noCPUMeter struct{}

func (noCPUMeter) Snapshot(context.Context) CPUSnapshot {
	return CPUSnapshot{RedisNote: "no CPU meter given", PostgresNote: "no CPU meter given"}
}

// cpuDelta turns the snapshots around the measured part into per-request
// figures. replicas are the targets' process_cpu_seconds_total before and
// after (a target missing from either leaves the part unmeasured).
func cpuDelta(before, after CPUSnapshot, replicasBefore, replicasAfter map[string]float64, reqs int64) CPU {
	var c CPU
	c.Replicas = replicaCPU(replicasBefore, replicasAfter, reqs)
	for t, a := range replicasAfter {
		if b, ok := replicasBefore[t]; ok {
			if c.ByTarget == nil {
				c.ByTarget = map[string]float64{}
			}
			c.ByTarget[t] = a - b
		}
	}
	switch {
	case before.Redis == nil || after.Redis == nil:
		c.Redis.Note = cmp.Or(after.RedisNote, before.RedisNote, "not measured")
	default:
		c.Redis = part(*after.Redis-*before.Redis, reqs)
		c.Redis.Note = "the whole redis-server: other clients of it count too"
	}
	switch {
	case before.Postgres == nil || after.Postgres == nil:
		c.Postgres.Note = cmp.Or(after.PostgresNote, before.PostgresNote, "not measured")
	default:
		var secs float64
		for pid, a := range after.Postgres {
			secs += a - before.Postgres[pid] // a backend opened during the run counts whole
		}
		c.Postgres = part(secs, reqs)
		c.Postgres.Note = "backends of the run's database only; backends that closed during the run and the server's own processes (WAL writer, checkpointer) are left out"
	}
	c.Complete = c.Replicas.Measured && c.Redis.Measured && c.Postgres.Measured
	for _, p := range []CPUPart{c.Replicas, c.Redis, c.Postgres} {
		if p.Measured {
			c.TotalUSPerReq += p.USPerReq
		}
	}
	return c
}

func replicaCPU(before, after map[string]float64, reqs int64) CPUPart {
	if len(after) == 0 {
		return CPUPart{Note: "no target exports process_cpu_seconds_total"}
	}
	var secs float64
	for t, a := range after {
		b, ok := before[t]
		if !ok {
			return CPUPart{Note: "target " + t + " did not answer /metrics before the run"}
		}
		secs += a - b
	}
	if len(before) != len(after) {
		return CPUPart{Note: "a target did not answer /metrics after the run"}
	}
	return part(secs, reqs)
}

func part(secs float64, reqs int64) CPUPart {
	p := CPUPart{Measured: true, Seconds: secs}
	if reqs > 0 {
		p.USPerReq = secs * 1e6 / float64(reqs)
	}
	return p
}

// Text is the one-line form: each part in µs per request, "-" when not
// measured, then the total.
func (c CPU) Text() string {
	f := func(p CPUPart) string {
		if !p.Measured {
			return "-"
		}
		return strconv.FormatFloat(p.USPerReq, 'f', 1, 64) + "µs"
	}
	total := strconv.FormatFloat(c.TotalUSPerReq, 'f', 1, 64) + "µs"
	if !c.Complete {
		total += " (of the measured parts)"
	}
	return fmt.Sprintf("replicas %s  redis %s  postgres %s  total %s", f(c.Replicas), f(c.Redis), f(c.Postgres), total)
}

// component is a part's µs per request by name (total when empty); a
// part not measured is NaN, which fails every threshold.
func (c CPU) component(name string) float64 {
	var p CPUPart
	switch name {
	case "", "total":
		if !c.Complete {
			return math.NaN()
		}
		return c.TotalUSPerReq
	case "replicas":
		p = c.Replicas
	case "redis":
		p = c.Redis
	case "postgres":
		p = c.Postgres
	}
	if !p.Measured {
		return math.NaN()
	}
	return p.USPerReq
}
