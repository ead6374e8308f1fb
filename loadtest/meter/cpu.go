package meter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/productcache/loadtest"
)

// CPU is a [loadtest.CPUMeter] reading Redis's INFO cpu and the /proc
// times of the backends of a PostgreSQL database on this machine.
type CPU struct {
	rdb    *redis.Client // nil: Redis not measured
	pg     *pgx.Conn     // nil: PostgreSQL not measured
	pgNote string
}

// NewCPU connects to what it can measure: Redis when redisURL is set,
// PostgreSQL when databaseURL is set and names a server on this machine.
// It never fails: a part it cannot measure says why in its note.
func NewCPU(ctx context.Context, redisURL, databaseURL string) *CPU {
	m := &CPU{}
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

// Close closes its connections.
func (m *CPU) Close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
	if m.pg != nil {
		_ = m.pg.Close(context.Background())
	}
}

// Snapshot reads Redis and the database's backends (what it connected to).
func (m *CPU) Snapshot(ctx context.Context) loadtest.CPUSnapshot {
	s := loadtest.CPUSnapshot{RedisNote: "no Redis URL given", PostgresNote: m.pgNote}
	if m.rdb != nil {
		s.RedisNote = "INFO cpu did not answer"
		if v, err := redisCPU(ctx, m.rdb); err == nil {
			s.Redis = &v
		}
	}
	if m.pg != nil {
		if v, err := m.postgresCPU(ctx); err == nil {
			s.Postgres = v
		} else {
			s.PostgresNote = err.Error()
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
			return 0, fmt.Errorf("meter: INFO cpu: %s: %w", k, err)
		}
		total += f
		found++
	}
	if found != 2 {
		return 0, errors.New("meter: INFO cpu: no used_cpu_sys and used_cpu_user")
	}
	return total, nil
}

// postgresCPU reads the CPU time of every backend connected to this
// connection's database, except the meter's own.
func (m *CPU) postgresCPU(ctx context.Context) (map[int]float64, error) {
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

// procCPU is the CPU time of a process, in seconds: the scheduler's
// running time from /proc/PID/schedstat, in nanoseconds, or where the
// kernel has none, utime + stime from /proc/PID/stat (procfs parses
// both). /proc/PID/stat counts in ticks (10 ms here), and a backend that
// served a short run on a busy machine often had not used one: a compare
// run's PostgreSQL CPU read 0 for its several dozen backends.
func procCPU(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	if ss, err := p.Schedstat(); err == nil {
		return float64(ss.RunningNanoseconds) / 1e9, nil
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}
