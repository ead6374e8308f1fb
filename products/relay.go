package products

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/tiercache"
)

// The relay through PostgreSQL (docs/design.md §3.15). A writer that
// cannot reach Redis still reaches the database: after its invalidation
// was deferred it sends NOTIFY with its outbox row's id, every replica
// LISTENs on a connection of its own, and the first that can reach Redis
// claims the row (FOR UPDATE SKIP LOCKED, as the sweeper) and sends it.
// Its peers then hear of the write within milliseconds, not at the
// sweeper's next pass; the sweeper stays for a writer that dies before it
// can notify. The channel is named after the schema, so deployments (and
// tests) that share a database in schemas of their own do not hear each
// other.

const (
	relayChannelSQL = `SELECT 'cache_outbox_' || current_schema()`
	notifySQL       = `SELECT pg_notify('cache_outbox_' || current_schema(), $1)`

	// relayClaimSQL locks row $1 if it is still pending and no sweeper or
	// other relay holds it.
	relayClaimSQL = `SELECT id, keys, groups FROM cache_outbox WHERE id = $1 AND done_at IS NULL FOR UPDATE SKIP LOCKED`

	relayBackoff  = time.Second // longest wait between LISTEN connection attempts
	relayAttempts = 5           // tries of one relayed row: 25+50+100+200 ms of pauses between them
	relayInFlight = 8           // relayed rows tried at once, off the LISTEN loop
)

// notifyDeferred tells the other replicas, through PostgreSQL, that the
// invalidation of outbox row oid could not reach Redis from here. An
// invalidation the master took but too few replicas acknowledged is not
// relayed: its broadcast went out.
func (s *Service) notifyDeferred(ctx context.Context, oid int64, err error) {
	if oid == 0 || s.outbox == nil || errors.Is(err, tiercache.ErrNotReplicated) {
		return
	}
	s.store.count(opOutbox)
	if _, err := s.store.pool.Exec(ctx, notifySQL, strconv.FormatInt(oid, 10)); err != nil {
		s.log.Warn("products: outbox relay notify failed; the sweeper will re-send", "outbox_id", oid, "err", err)
		return
	}
	s.outbox.notified.Add(1)
}

// relayLoop LISTENs for the ids of deferred invalidations until ctx ends,
// reconnecting with a backoff when the connection breaks.
func (o *outbox) relayLoop(ctx context.Context) {
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := o.listen(ctx); err != nil && ctx.Err() == nil {
			o.log.Debug("products: outbox relay connection lost", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, relayBackoff)
	}
}

// listen runs one LISTEN connection until it fails or ctx ends.
func (o *outbox) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, o.store.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var channel string
	if err := conn.QueryRow(ctx, relayChannelSQL).Scan(&channel); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	o.listening.Store(true)
	defer o.listening.Store(false)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			o.relay(ctx, id)
		}
	}
}

// relay sends row id if this replica can reach Redis and the row is still
// pending and unclaimed. A failed attempt (Redis not answering this
// replica either, a send that failed) is tried up to relayAttempts times in all,
// with a doubling pause before it is left to the sweeper: on a starved
// machine one slow PING must not cost the peers a whole sweep. Attempts
// run off the LISTEN loop (at most relayInFlight at once), so a replica
// that cannot reach Redis, such as the cut-off writer hearing its own
// NOTIFY, does not hold up the notifications behind it.
func (o *outbox) relay(ctx context.Context, id int64) {
	select {
	case o.relaySlots <- struct{}{}:
	default:
		o.relayRow(ctx, id) // all slots busy: in line, never dropped
		return
	}
	go func() {
		defer func() { <-o.relaySlots }()
		o.relayRow(ctx, id)
	}()
}

func (o *outbox) relayRow(ctx context.Context, id int64) {
	wait := 25 * time.Millisecond
	var sendErr error // the last send's failure; nil when Redis did not answer here
	for range relayAttempts {
		if o.redisUp(ctx) == nil {
			n, err := o.sendClaimed(ctx, relayClaimSQL, id)
			if err == nil {
				o.relayed.Add(uint64(n)) // 0: done already, or another replica holds it
				return
			}
			sendErr = err
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	if sendErr != nil && ctx.Err() == nil {
		o.errs.Add(1)
		o.log.Warn("products: outbox relay failed; the sweeper will re-send", "outbox_id", id, "err", sendErr)
	}
}
