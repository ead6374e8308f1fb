package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
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

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go runs on (sysconf(_SC_CLK_TCK) would
// need cgo).
const clockTicks = 100

// cpuMeter takes the CPU snapshots of a run.
type cpuMeter struct {
	rdb    *redis.Client // nil: Redis not measured
	pg     *pgx.Conn     // nil: PostgreSQL not measured
	pgNote string
}

// cpuSnapshot is one reading of every component; absent parts are nil.
type cpuSnapshot struct {
	redis    *float64
	postgres map[int]float64 // seconds by backend pid
}

// newCPUMeter connects to what it can measure: Redis when redisURL is set,
// PostgreSQL when databaseURL is set and names a server on this machine.
// It never fails: a part it cannot measure says why in its note.
func newCPUMeter(ctx context.Context, redisURL, databaseURL string) *cpuMeter {
	m := &cpuMeter{}
	if redisURL != "" {
		if opt, err := redis.ParseURL(redisURL); err == nil {
			m.rdb = redis.NewClient(opt)
		}
	}
	switch {
	case databaseURL == "":
		m.pgNote = "no database URL given"
	case !localDatabase(databaseURL):
		m.pgNote = "PostgreSQL is not on this machine"
	default:
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, databaseURL)
		if err != nil {
			m.pgNote = "cannot connect to the database"
			break
		}
		m.pg = conn
	}
	return m
}

// localDatabase reports whether a PostgreSQL URL names this machine (a
// loopback host or a Unix socket), so /proc shows its backends.
func localDatabase(databaseURL string) bool {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return false
	}
	h := cfg.Host
	if strings.HasPrefix(h, "/") || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (m *cpuMeter) close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
	if m.pg != nil {
		_ = m.pg.Close(context.Background())
	}
}

func (m *cpuMeter) snapshot(ctx context.Context) cpuSnapshot {
	var s cpuSnapshot
	if m.rdb != nil {
		if v, err := redisCPU(ctx, m.rdb); err == nil {
			s.redis = &v
		}
	}
	if m.pg != nil {
		if v, err := m.postgresCPU(ctx); err == nil {
			s.postgres = v
		} else {
			m.pgNote = err.Error()
		}
	}
	return s
}

// redisCPU is used_cpu_sys + used_cpu_user of INFO cpu, in seconds.
func redisCPU(ctx context.Context, rdb *redis.Client) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	return parseRedisCPU(info)
}

// parseRedisCPU adds used_cpu_sys and used_cpu_user of an INFO answer.
func parseRedisCPU(info string) (float64, error) {
	var total float64
	found := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || (k != "used_cpu_sys" && k != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("loadtest: INFO cpu: %s: %w", k, err)
		}
		total += f
		found++
	}
	if found != 2 {
		return 0, errors.New("loadtest: INFO cpu: no used_cpu_sys and used_cpu_user")
	}
	return total, nil
}

// postgresCPU reads the CPU time of every backend connected to this
// connection's database, except the meter's own.
func (m *cpuMeter) postgresCPU(ctx context.Context) (map[int]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := m.pg.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := make(map[int]float64, len(pids))
	for _, pid := range pids {
		secs, err := procCPU(int(pid))
		if err != nil {
			return nil, fmt.Errorf("backend %d not readable in /proc (another machine or namespace?): %w", pid, err)
		}
		out[int(pid)] = secs
	}
	return out, nil
}

// procCPU is utime + stime of a process, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name (field 2) may hold spaces, so
// fields are counted after its closing parenthesis.
func parseProcStat(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("loadtest: malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("loadtest: short /proc stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("loadtest: malformed /proc stat times")
	}
	return float64(utime+stime) / clockTicks, nil
}

// cpuDelta turns the snapshots around the measured part into per-request
// figures. replicas are the targets' process_cpu_seconds_total before and
// after (a target missing from either leaves the part unmeasured).
func (m *cpuMeter) delta(before, after cpuSnapshot, replicasBefore, replicasAfter map[string]float64, reqs int64) CPU {
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
	case m.rdb == nil:
		c.Redis.Note = "no Redis URL given"
	case before.redis == nil || after.redis == nil:
		c.Redis.Note = "INFO cpu did not answer"
	default:
		c.Redis = part(*after.redis-*before.redis, reqs)
		c.Redis.Note = "the whole redis-server: other clients of it count too"
	}
	switch {
	case m.pg == nil || before.postgres == nil || after.postgres == nil:
		c.Postgres.Note = m.pgNote
	default:
		var secs float64
		for pid, a := range after.postgres {
			secs += a - before.postgres[pid] // a backend opened during the run counts whole
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
