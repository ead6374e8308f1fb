package products

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// outageOutbox returns an outbox on r's database whose Redis cannot be
// reached (nothing listens on port 1), as during an outage. The dial is
// not retried, so a sweep's ping fails at once: what is left of the sweep
// is its work on the database.
func outageOutbox(t testing.TB, r *replica) *outbox {
	t.Helper()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = dead.Close() })
	return newOutbox(r.store, r.cache, dead, testLogger(t))
}

// insertPending adds n due outbox rows in one statement.
func (r *replica) insertPending(t testing.TB, n int) {
	t.Helper()
	_, err := r.store.pool.Exec(context.Background(), `INSERT INTO cache_outbox (keys, groups, created_at)
SELECT ARRAY['product:' || i], ARRAY[]::text[], now() - interval '1 minute' FROM generate_series(1, $1) i`, n)
	if err != nil {
		t.Fatalf("insert %d outbox rows: %v", n, err)
	}
}

// rule 14: the outbox's figures count every pending row. While Redis is down the
// rows only grow, and no sweep can deliver them, so the count is refreshed
// at most every statsEveryWhileDown, not at every sweep: the first sweep of
// the outage counts, the next ones do not, and the first sweep with Redis
// back does.
func TestOutboxCountsRarelyWhileRedisDown(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	a := e.replica("a", "tiered")
	o := outageOutbox(t, a)
	ctx := context.Background()
	opt := OutboxOptions{Grace: time.Second, BatchSize: 10}
	a.insertPending(t, 1)
	o.sweep(ctx, opt)
	if got := o.pending.Load(); got != 1 {
		t.Fatalf("pending after the first sweep of the outage: got %d, want 1", got)
	}
	a.insertPending(t, 1)
	o.sweep(ctx, opt)
	if got := o.pending.Load(); got != 1 {
		t.Fatalf("pending after a second sweep within %v: got %d, want 1 (not counted again)", statsEveryWhileDown, got)
	}
	a.svc.outbox.sweep(ctx, opt) // Redis is up for a's own outbox
	if got := a.svc.outbox.pending.Load(); got != 0 {
		t.Fatalf("pending after a sweep with Redis up: got %d, want 0", got)
	}
}

// TestOutboxSweepCostDuringOutage measures what a sweep costs while Redis
// is down with TIERCACHE_OUTBOX_ROWS rows pending (docs/outbox.md quotes
// it); it runs only when that variable is set:
//
//	TIERCACHE_OUTBOX_ROWS=300000 go test -run TestOutboxSweepCostDuringOutage -count=1 -v ./products/
//
// Side by side in one run: the statistics query alone, and the sweeps after
// the outage's first.
func TestOutboxSweepCostDuringOutage(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("TIERCACHE_OUTBOX_ROWS"))
	if rows <= 0 {
		t.Skip("set TIERCACHE_OUTBOX_ROWS to measure")
	}
	e := manualEnv(t)
	a := e.replica("a", "tiered")
	a.insertPending(t, rows)
	if _, err := a.store.pool.Exec(context.Background(), "VACUUM ANALYZE cache_outbox"); err != nil {
		t.Fatal(err)
	}
	o := outageOutbox(t, a)
	ctx := context.Background()
	opt := OutboxOptions{Grace: time.Second, BatchSize: DefaultOutboxBatchSize, ReplayWindow: DefaultOutboxReplayWindow}
	o.sweep(ctx, opt) // the outage's first sweep
	const n = 20
	began := time.Now()
	for range n {
		o.refreshStats(ctx)
	}
	query := time.Since(began) / n
	began = time.Now()
	for range n {
		o.sweep(ctx, opt)
	}
	sweep := time.Since(began) / n
	if got := o.pending.Load(); got != int64(rows) {
		t.Fatalf("pending: got %d, want %d", got, rows)
	}
	t.Logf("%d pending rows, Redis down: statistics query %v, sweep %v (mean of %d; sweep/query %.3f)",
		rows, query.Round(10*time.Microsecond), sweep.Round(10*time.Microsecond), n, float64(sweep)/float64(query))
}
