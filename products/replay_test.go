package products

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// outboxDone counts the rows of cache_outbox marked done (kept for the
// replay window).
func (r *replica) outboxDone(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := r.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM cache_outbox WHERE done_at IS NOT NULL").Scan(&n); err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	return n
}

// TestReplayAfterMasterChange: a failover lost an acknowledged
// invalidation (the old value put back in L2, as the promoted replica
// would hold it: b then serves version 1 from L2). MasterChanged makes a's
// sweeper re-send the replay window's rows, and b serves version 2. With
// the window off (ReplayWindow negative) nothing is replayed and the test
// fails.
func TestReplayAfterMasterChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.outbox = OutboxOptions{SweepInterval: time.Hour, Grace: time.Hour, ReplayWindow: time.Minute}
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")
	rdb := testenv.Redis(t)
	ctx := context.Background()
	id, _ := a.create(t, "failover", 1)["id"].(string)
	b.warmL1(t, id)
	l2key := e.ns + ":v:{product:" + id + "}"
	old, err := rdb.Get(ctx, l2key).Bytes()
	if err != nil {
		t.Fatalf("L2 value of version 1: %v", err)
	}
	a.put(t, id, `{"name":"failover","price_cents":2}`)
	waitFor(t, 5*time.Second, "a's outbox row marked done", func() bool { return a.outboxDone(t) == 2 })
	// The failover: the new master holds the old value, and the
	// subscriptions broke (b's L1 flushed).
	if err := rdb.Set(ctx, l2key, old, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b to serve version 1 from the lost L2 value", func() bool { return b.version(t, id) == 1 })
	a.svc.MasterChanged()
	waitFor(t, 5*time.Second, "b to serve version 2 after the replay", func() bool { return b.version(t, id) == 2 })
	// The replay is counted once its last batch went out, just after the
	// publish b saw: wait for the count, then check there was one.
	waitFor(t, 5*time.Second, "the replay counted", func() bool { return a.svc.outbox.replays.Load() >= 1 })
	if n := a.svc.outbox.replays.Load(); n != 1 {
		t.Fatalf("replays = %d, want 1", n)
	}
}

// TestOutboxPrunesDoneRowsAfterWindow: a delivered row is kept, marked
// done, for the replay window, is not re-sent by the sweeper, and is
// deleted once the window has passed. With the window off the kept row is
// pruned at once and the test fails.
func TestOutboxPrunesDoneRowsAfterWindow(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	r := e.replica("a", "tiered")
	ctx := context.Background()
	fresh, stale := r.insertDue(t, "fresh"), r.insertDue(t, "stale")
	r.svc.outbox.markDone(ctx, []int64{fresh, stale})
	if _, err := r.store.pool.Exec(ctx, `UPDATE cache_outbox SET done_at = now() - interval '1 minute' WHERE id = $1`, stale); err != nil {
		t.Fatal(err)
	}
	opt := OutboxOptions{ReplayWindow: 30 * time.Second}.withDefaults()
	r.svc.outbox.sweep(ctx, opt)
	if n := r.svc.outbox.resent.Load(); n != 0 {
		t.Fatalf("the sweeper re-sent %d done rows, want none", n)
	}
	var ids []int64
	rows, _ := r.store.pool.Query(ctx, "SELECT id FROM cache_outbox ORDER BY id")
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	if rows.Err() != nil || len(ids) != 1 || ids[0] != fresh {
		t.Fatalf("rows after the prune: %v (%v), want only %d, done within the window", ids, rows.Err(), fresh)
	}
	if n := r.svc.outbox.pruned.Load(); n != 1 {
		t.Fatalf("pruned = %d, want 1", n)
	}
}
