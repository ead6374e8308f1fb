-- +goose Up
-- cache_outbox holds the cache invalidation of every committed write whose
-- delivery to Redis is not yet confirmed (docs/design.md §3.14). A row is
-- inserted in the write's own transaction and deleted once an
-- invalidation of its keys and groups went through Redis: by the writer
-- right after the commit, or by any replica's sweeper after OUTBOX_GRACE.
CREATE TABLE cache_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    keys       text[] NOT NULL,
    groups     text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE cache_outbox;
