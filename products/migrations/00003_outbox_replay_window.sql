-- +goose Up
-- Done outbox rows are kept for OUTBOX_REPLAY_WINDOW after their
-- invalidation went through, so that a replica that sees the Redis master
-- change can re-send what a failover may have lost (docs/design.md §3.15).
-- done_at is NULL while the row is pending.
ALTER TABLE cache_outbox ADD COLUMN done_at timestamptz;
CREATE INDEX cache_outbox_pending ON cache_outbox (id) WHERE done_at IS NULL;
CREATE INDEX cache_outbox_done_at ON cache_outbox (done_at) WHERE done_at IS NOT NULL;

-- +goose Down
DROP INDEX cache_outbox_done_at;
DROP INDEX cache_outbox_pending;
ALTER TABLE cache_outbox DROP COLUMN done_at;
