package products

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/tiercache"
)

// The invalidation outbox (docs/design.md §3 rule 14). Every write inserts its
// invalidation into cache_outbox in its own transaction (see Store.inTx).
// After the commit the writer invalidates as before; when Redis took the
// delete and the publish, the marker deletes the row, in batches, off the
// request path. A row that stays (the writer could not reach Redis, or died
// before the mark) is re-sent by the sweeper of whichever replica claims it
// first once it is older than the grace, and deleted when Redis took it.
// A delivered row is marked done (done_at) and kept for the replay window
// (OUTBOX_REPLAY_WINDOW), then pruned by the sweepers in bounded batches:
// when a replica sees the Redis master change, it re-sends the window's
// rows once, since a failover can lose what the old master acknowledged
// (docs/design.md §3.15).

const (
	insertOutboxSQL = `INSERT INTO cache_outbox (keys, groups) VALUES ($1, $2) RETURNING id`

	// markSQL marks the rows of delivered invalidations done. A row that a
	// sweeper holds is skipped, not waited for: the sweeper re-sends it
	// (harmless) and marks it.
	markSQL = `UPDATE cache_outbox SET done_at = now() WHERE id IN (
	SELECT id FROM cache_outbox WHERE id = ANY($1) AND done_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)`

	// claimSQL locks the due rows that no other sweeper holds. Only
	// committed rows are visible, so a re-send always follows its write's
	// commit.
	claimSQL = `SELECT id, keys, groups FROM cache_outbox
WHERE done_at IS NULL AND created_at < now() - $1 * interval '1 microsecond'
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`

	markClaimedSQL = `UPDATE cache_outbox SET done_at = now() WHERE id = ANY($1)`

	// pruneSQL deletes up to $2 rows done longer ago than the replay
	// window $1 (microseconds).
	pruneSQL = `DELETE FROM cache_outbox WHERE id IN (
	SELECT id FROM cache_outbox WHERE done_at < now() - $1 * interval '1 microsecond' LIMIT $2)`

	// windowSQL reads the rows done within the replay window, after id $2.
	windowSQL = `SELECT id, keys, groups FROM cache_outbox
WHERE done_at >= now() - $1 * interval '1 microsecond' AND id > $2 ORDER BY id LIMIT $3`

	outboxStatsSQL = `SELECT count(*),
	COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8
FROM cache_outbox WHERE done_at IS NULL`
)

// Outbox defaults.
const (
	DefaultOutboxSweepInterval = 500 * time.Millisecond
	DefaultOutboxGrace         = time.Second
	DefaultOutboxBatchSize     = 256
	DefaultOutboxReplayWindow  = 30 * time.Second

	markQueueSize = 4096                  // marks waiting for the marker; beyond, the sweeper re-sends
	markBatchSize = 1024                  // rows per marker DELETE
	markLinger    = 20 * time.Millisecond // how long the marker gathers marks for one DELETE
	replayTimeout = 5 * time.Second
	pingTimeout   = 200 * time.Millisecond

	// statsEveryWhileDown is how often a sweeper that cannot reach Redis
	// counts the pending rows: they only grow then, and at 300,000 the
	// count took 52-180 ms, on every replica at every sweep.
	statsEveryWhileDown = 10 * time.Second
)

// OutboxOptions configure [Service.RunOutbox]. Zero values mean the
// defaults.
type OutboxOptions struct {
	// SweepInterval is how often the sweeper looks for undelivered
	// invalidations. Default 500ms (OUTBOX_SWEEP_INTERVAL).
	SweepInterval time.Duration
	// Grace is the age at which an undelivered invalidation is re-sent: it
	// leaves the writer time to deliver and mark its own. Default 1s
	// (OUTBOX_GRACE).
	Grace time.Duration
	// BatchSize bounds the rows one sweep transaction claims, re-sends as
	// one invalidation and marks done, and the done rows one prune deletes.
	// Default 256.
	BatchSize int
	// ReplayWindow is how long done rows are kept, to be re-sent when the
	// Redis master changes (docs/design.md §3.15). Default 30s
	// (OUTBOX_REPLAY_WINDOW); negative keeps none.
	ReplayWindow time.Duration
}

func (o OutboxOptions) withDefaults() OutboxOptions {
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultOutboxSweepInterval
	}
	if o.Grace <= 0 {
		o.Grace = DefaultOutboxGrace
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultOutboxBatchSize
	}
	if o.ReplayWindow == 0 {
		o.ReplayWindow = DefaultOutboxReplayWindow
	}
	o.ReplayWindow = max(o.ReplayWindow, 0)
	return o
}

// outbox is a replica's marker and sweeper, and their figures.
type outbox struct {
	store *Store
	cache *tiercache.Cache[Entry]
	rdb   redis.UniversalClient // the cache's Redis, pinged before a sweep; may be nil
	log   *slog.Logger
	marks chan int64 // ids of rows whose invalidation Redis took

	resent atomic.Uint64 // rows re-sent and marked done by the sweeper
	marked atomic.Uint64 // rows marked done by the marker
	pruned atomic.Uint64 // done rows deleted after the replay window

	replays    atomic.Uint64 // replays of the window after a master change
	relayed    atomic.Uint64 // rows sent for a cut-off writer on its NOTIFY
	relaySlots chan struct{} // relays in flight off the LISTEN loop
	notified   atomic.Uint64 // NOTIFYs this replica sent for its deferred invalidations
	listening  atomic.Bool   // the relay's LISTEN connection is up
	replayDue  atomic.Bool   // a master change was seen: replay the window
	wake       chan struct{} // wakes the sweeper for a replay
	errs       atomic.Uint64 // failed sweeps, re-sends and marks
	pending    atomic.Int64  // rows in the table at the last sweep
	oldest     atomic.Uint64 // float64 bits: age in seconds of the oldest row then

	// failing is set while sweeps fail, to log the first failure only.
	// Only the sweeping goroutine uses it.
	failing bool
	// statsAt is when the sweeper last counted the pending rows. Only the
	// sweeping goroutine uses it.
	statsAt time.Time

	// afterClaim is a test hook: a sweep holds the rows ids locked and is
	// about to re-send them.
	afterClaim func(ids []int64)
}

func newOutbox(store *Store, cache *tiercache.Cache[Entry], rdb redis.UniversalClient, logger *slog.Logger) *outbox {
	return &outbox{store: store, cache: cache, rdb: rdb, log: logger, marks: make(chan int64, markQueueSize), wake: make(chan struct{}, 1),
		relaySlots: make(chan struct{}, relayInFlight)}
}

// done queues the deletion of row id, whose invalidation Redis took. It
// never blocks a request: when the queue is full the row stays, and a
// sweeper re-sends it after the grace, which is harmless.
func (o *outbox) done(id int64) {
	select {
	case o.marks <- id:
	default:
	}
}

// RunOutbox runs this replica's part of durable invalidation until ctx
// ends: the marker, which marks done in batches the outbox rows of the
// invalidations Redis took; the relay, which LISTENs for the rows of
// writers cut off from Redis and sends them (docs/design.md §3.15); and the
// sweeper, which every opt.SweepInterval re-sends the rows older than
// opt.Grace, whichever replica wrote them, marks done those Redis took,
// replays the window after a master change and prunes what is older. Replicas share the
// rows without a leader (FOR UPDATE SKIP LOCKED). On return the queued
// marks have been written. It returns at once when the cache uses no Redis
// (mode none or local): no rows are recorded then. Call it once, after the
// schema is ready.
func (s *Service) RunOutbox(ctx context.Context, opt OutboxOptions) {
	o := s.outbox
	if o == nil {
		return
	}
	opt = opt.withDefaults()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		o.markLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		o.relayLoop(ctx)
	}()
	o.sweepLoop(ctx, opt)
	wg.Wait()
}

func (o *outbox) markLoop(ctx context.Context) {
	ids := make([]int64, 0, markBatchSize)
	for {
		select {
		case <-ctx.Done():
			o.flushMarks(ctx, ids[:0])
			return
		case id := <-o.marks:
			ids = o.gather(ctx, append(ids[:0], id))
			if ctx.Err() != nil {
				o.flushMarks(ctx, ids)
				return
			}
			o.markDone(ctx, ids)
		}
	}
}

// flushMarks writes ids and the marks still queued, under a short timeout
// of its own: a clean shutdown leaves no delivered row for a sweeper to
// re-send.
func (o *outbox) flushMarks(ctx context.Context, ids []int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for ids = o.drain(ids); len(ids) > 0; ids = o.drain(ids[:0]) {
		o.markDone(ctx, ids)
	}
}

// gather adds the marks that arrive within markLinger to ids, up to a
// batch, so that a busy replica sends one DELETE per markLinger rather
// than one per write.
func (o *outbox) gather(ctx context.Context, ids []int64) []int64 {
	t := time.NewTimer(markLinger)
	defer t.Stop()
	for len(ids) < markBatchSize {
		select {
		case id := <-o.marks:
			ids = append(ids, id)
		case <-t.C:
			return ids
		case <-ctx.Done():
			return ids
		}
	}
	return ids
}

// drain adds queued marks to ids, up to a batch, without waiting.
func (o *outbox) drain(ids []int64) []int64 {
	for len(ids) < markBatchSize {
		select {
		case id := <-o.marks:
			ids = append(ids, id)
		default:
			return ids
		}
	}
	return ids
}

// markDone deletes the rows ids that no sweeper holds, and reports how
// many it deleted.
func (o *outbox) markDone(ctx context.Context, ids []int64) int64 {
	o.store.count(opOutbox)
	tag, err := o.store.pool.Exec(ctx, markSQL, ids)
	if err != nil {
		o.errs.Add(1)
		o.log.Warn("products: outbox mark failed; the sweeper will re-send", "rows", len(ids), "err", err)
		return 0
	}
	o.marked.Add(uint64(tag.RowsAffected()))
	return tag.RowsAffected()
}

func (o *outbox) sweepLoop(ctx context.Context, opt OutboxOptions) {
	t := time.NewTicker(opt.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
		}
		o.sweep(ctx, opt)
	}
}

// sweep re-sends what is due, batch after batch until one comes back
// short or fails, then records the pending figures. A replica that cannot
// reach Redis claims nothing: it would hold the rows locked, and the other
// sweepers away from them, for as long as its own re-send takes to fail.
// Nor does it count the pending rows at every sweep, only every
// statsEveryWhileDown: the count reads every pending row, and they pile up
// while Redis is down.
func (o *outbox) sweep(ctx context.Context, opt OutboxOptions) {
	if o.replayDue.Load() && o.redisUp(ctx) == nil {
		o.replayWindow(ctx, opt)
	}
	redisDown := false
	for {
		err := o.redisUp(ctx)
		var n int
		if err == nil {
			n, err = o.sweepBatch(ctx, opt.Grace, opt.BatchSize)
		} else {
			redisDown = true
		}
		if err != nil {
			o.sweepFailed(ctx, err)
			break
		}
		if o.failing {
			o.failing = false
			o.log.Info("products: outbox sweeps succeed again")
		}
		if n < opt.BatchSize {
			break
		}
	}
	o.prune(ctx, opt)
	if !redisDown || time.Since(o.statsAt) >= statsEveryWhileDown {
		o.refreshStats(ctx)
	}
}

// sweepFailed counts a failed sweep; it logs a warning for the first of a
// run of failures only, so that an outage does not log every interval.
func (o *outbox) sweepFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	o.errs.Add(1)
	if o.failing {
		o.log.Debug("products: outbox sweep failed", "err", err)
		return
	}
	o.failing = true
	o.log.Warn("products: outbox sweep failed; rows stay pending until a sweep succeeds", "err", err)
}

// redisUp pings the cache's Redis with a short timeout.
func (o *outbox) redisUp(ctx context.Context) error {
	if o.rdb == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := o.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("products: outbox sweep skipped, redis unreachable: %w", err)
	}
	return nil
}

// outboxRow is a claimed cache_outbox row.
type outboxRow struct {
	ID     int64
	Keys   []string
	Groups []string
}

// sweepBatch claims up to limit rows older than grace, re-sends them as
// one invalidation and, if Redis took it, marks them done, all in one
// transaction: the rows stay locked (and other sweepers skip them) until
// they are done or, on failure, released for the next sweep.
func (o *outbox) sweepBatch(ctx context.Context, grace time.Duration, limit int) (int, error) {
	n, err := o.sendClaimed(ctx, claimSQL, grace.Microseconds(), limit)
	o.resent.Add(uint64(n))
	return n, err
}

// sendClaimed runs claim (a SELECT of id, keys, groups ... FOR UPDATE SKIP
// LOCKED) in a transaction, re-sends what it locked as one invalidation,
// marks those rows done and commits. It returns the rows sent.
func (o *outbox) sendClaimed(ctx context.Context, claim string, args ...any) (int, error) {
	tx, err := o.store.pool.Begin(ctx)
	if err != nil {
		return 0, dbError("outbox sweep", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	o.store.count(opOutbox)
	rows, _ := tx.Query(ctx, claim, args...)
	claimed, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		return 0, dbError("outbox sweep", err)
	}
	if len(claimed) == 0 {
		return 0, nil
	}
	ids, keys, groups := mergeRows(claimed)
	if o.afterClaim != nil {
		o.afterClaim(ids)
	}
	if err := o.replay(ctx, keys, groups); err != nil {
		return 0, err
	}
	o.store.count(opOutbox)
	if _, err := tx.Exec(ctx, markClaimedSQL, ids); err != nil {
		return 0, dbError("outbox sweep", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, dbError("outbox sweep", err)
	}
	return len(ids), nil
}

// mergeRows returns the ids of rows and the union of their keys and
// groups: one invalidation covers them all.
func mergeRows(rows []outboxRow) (ids []int64, keys, groups []string) {
	seen := make(map[string]bool, len(rows))
	add := func(dst []string, ss []string) []string {
		for _, s := range ss {
			if !seen[s] {
				seen[s] = true
				dst = append(dst, s)
			}
		}
		return dst
	}
	for _, r := range rows {
		ids = append(ids, r.ID)
		keys = add(keys, r.Keys)
	}
	clear(seen)
	for _, r := range rows {
		groups = add(groups, r.Groups)
	}
	return ids, keys, groups
}

// replay invalidates keys and groups again through the cache. It returns
// nil only if Redis took every delete and publish; invalidations are
// idempotent, so replaying one that was delivered is harmless.
func (o *outbox) replay(ctx context.Context, keys, groups []string) error {
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	if len(groups) == 0 {
		return o.cache.Invalidate(ctx, keys...)
	}
	for i, g := range groups {
		if i > 0 {
			keys = nil
		}
		if err := o.cache.InvalidateGroup(ctx, g, keys...); err != nil {
			return err
		}
	}
	return nil
}

// refreshStats records the rows pending and the age of the oldest.
func (o *outbox) refreshStats(ctx context.Context) {
	var n int64
	var age float64
	o.statsAt = time.Now()
	o.store.count(opOutbox)
	if err := o.store.pool.QueryRow(ctx, outboxStatsSQL).Scan(&n, &age); err != nil {
		if ctx.Err() == nil {
			o.errs.Add(1)
			o.log.Warn("products: outbox figures failed", "err", err)
		}
		return
	}
	o.pending.Store(n)
	o.oldest.Store(math.Float64bits(age))
}

// MasterChanged tells the outbox that the Redis master changed (a Sentinel
// +switch-master, a new run_id after a reconnect): the new master may lack
// invalidations the old one acknowledged, so the next sweep, started at
// once, re-sends every row done within the replay window, once
// (docs/design.md §3.15). Invalidations are idempotent.
func (s *Service) MasterChanged() {
	o := s.outbox
	if o == nil {
		return
	}
	o.replayDue.Store(true)
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// replayWindow re-sends the rows done within the window, batch by batch;
// on a failure the replay stays due for the next sweep.
func (o *outbox) replayWindow(ctx context.Context, opt OutboxOptions) {
	o.replayDue.Store(false)
	after := int64(0)
	for {
		o.store.count(opOutbox)
		rows, _ := o.store.pool.Query(ctx, windowSQL, opt.ReplayWindow.Microseconds(), after, opt.BatchSize)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
		if err == nil && len(got) > 0 {
			ids, keys, groups := mergeRows(got)
			err = o.replay(ctx, keys, groups)
			after = ids[len(ids)-1]
		}
		if err != nil {
			o.replayDue.Store(true)
			o.sweepFailed(ctx, err)
			return
		}
		if len(got) < opt.BatchSize {
			o.replays.Add(1)
			o.log.Info("products: redis master changed, replayed the outbox window", "window", opt.ReplayWindow.String())
			return
		}
	}
}

// prune deletes the rows done longer ago than the replay window, in
// batches of opt.BatchSize, at most a few batches a sweep.
func (o *outbox) prune(ctx context.Context, opt OutboxOptions) {
	for range 8 {
		o.store.count(opOutbox)
		tag, err := o.store.pool.Exec(ctx, pruneSQL, opt.ReplayWindow.Microseconds(), opt.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				o.errs.Add(1)
			}
			return
		}
		o.pruned.Add(uint64(tag.RowsAffected()))
		if tag.RowsAffected() < int64(opt.BatchSize) {
			return
		}
	}
}
