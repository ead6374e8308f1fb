package products

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Ops names the store operations, the values of the op label of
// productsd_db_queries_total. "outbox" counts the statements of the
// invalidation outbox: the row each write records, and the deletes and
// claims of the marker and the sweeper.
var Ops = []string{"get", "list", "create", "update", "delete", "seed", "outbox"}

// Store keeps products in PostgreSQL. It counts the statements it sends per
// operation (transaction control, BEGIN and COMMIT, is not counted), so
// tests and metrics can tell how many reads reached the database.
type Store struct {
	pool    *pgxpool.Pool
	queries [7]atomic.Uint64 // indexed like Ops

	// outbox makes every write record its invalidation in cache_outbox, in
	// its own transaction. Set once by NewService, before any write.
	outbox bool

	readRetries     atomic.Uint64 // reads retried after a lost connection
	writeRetries    atomic.Uint64 // writes retried after a connection lost before they ran
	unknownOutcomes atomic.Uint64 // writes whose connection was lost after COMMIT was sent
	freshSlots      chan struct{} // connections opened for retries, at most maxFreshConns

	// Test hooks, nil outside tests.
	afterGet     func(id uuid.UUID)            // a Get read its row, before it returns
	beforeCommit func(op string, id uuid.UUID) // a write ran, before COMMIT
	newID        func() (uuid.UUID, error)     // replaces uuid.NewV7

	afterFreshConnect func(context.Context, *pgconn.PgConn) error // runs as a fresh connection's AfterConnect
}

const (
	opGet = iota
	opList
	opCreate
	opUpdate
	opDelete
	opSeed
	opOutbox
)

// NewStore returns a Store on pool, which the caller owns and closes.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, freshSlots: make(chan struct{}, maxFreshConns)}
}

// Queries returns the number of statements sent for op (one of [Ops]).
func (s *Store) Queries(op string) uint64 {
	for i, name := range Ops {
		if name == op {
			return s.queries[i].Load()
		}
	}
	return 0
}

// ReadRetries returns how many reads were retried because their
// connection was lost.
func (s *Store) ReadRetries() uint64 { return s.readRetries.Load() }

// WriteRetries is how many writes were retried on a fresh connection
// because their pooled one was dead before any of their statements ran.
func (s *Store) WriteRetries() uint64 { return s.writeRetries.Load() }

// UnknownOutcomes is how many writes failed with ErrOutcomeUnknown: their
// connection was lost after COMMIT was sent.
func (s *Store) UnknownOutcomes() uint64 { return s.unknownOutcomes.Load() }

// Pool returns the connection pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func (s *Store) count(op int) { s.queries[op].Add(1) }

const columns = "id, name, description, price_cents, version, created_at, updated_at"

func scanProduct(row pgx.Row) (Product, error) {
	var p Product
	err := row.Scan(&p.ID, &p.Name, &p.Description, &p.PriceCents, &p.Version, &p.CreatedAt, &p.UpdatedAt)
	return p, err
}

// Get returns the product with id, or ErrNotFound. A read that loses its
// connection is retried once (see [Store.ReadRetries]).
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Product, error) {
	p, err := retryRead(ctx, s, func(q querier) (Product, error) {
		s.count(opGet)
		return scanProduct(q.QueryRow(ctx, "SELECT "+columns+" FROM products WHERE id = $1", id))
	})
	if s.afterGet != nil {
		s.afterGet(id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Product{}, ErrNotFound
	}
	if err != nil {
		return Product{}, dbError("get", err)
	}
	return p, nil
}

// List returns up to limit products with ids above after (uuid.Nil: from
// the start), ordered by id. A read that loses its connection is retried
// once.
func (s *Store) List(ctx context.Context, limit int, after uuid.UUID) (Page, error) {
	items, err := retryRead(ctx, s, func(q querier) ([]Product, error) {
		s.count(opList)
		rows, err := q.Query(ctx, "SELECT "+columns+" FROM products WHERE id > $1 ORDER BY id LIMIT $2", after, limit+1)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Product, error) { return scanProduct(r) })
	})
	if err != nil {
		return Page{}, dbError("list", err)
	}
	pg := Page{Items: items}
	if len(items) > limit {
		pg.Items = items[:limit]
		pg.NextAfter = items[limit-1].ID
	}
	return pg, nil
}

// Create inserts a product with a new UUIDv7 id at version 1. It returns
// the id of the write's outbox row, 0 when the store records none.
func (s *Store) Create(ctx context.Context, in Input) (Product, int64, error) {
	newID := uuid.NewV7
	if s.newID != nil {
		newID = s.newID
	}
	id, err := newID()
	if err != nil {
		return Product{}, 0, fmt.Errorf("products: create: %w", err)
	}
	var p Product
	oid, err := s.inTx(ctx, "create", id, func(b *pgx.Batch) {
		s.count(opCreate)
		b.Queue("INSERT INTO products (id, name, description, price_cents) VALUES ($1, $2, $3, $4) RETURNING "+columns,
			id, in.Name, in.Description, in.PriceCents).QueryRow(func(row pgx.Row) error {
			var scanErr error
			p, scanErr = scanProduct(row)
			return scanErr
		})
	})
	return p, oid, err
}

// Precondition is an If-Match condition: nil means none, an empty slice
// means one that no version satisfies (only weak or foreign tags), and
// otherwise the versions that satisfy it.
type Precondition []int64

// updateSQL updates the row if it matches, and in the same statement (one
// snapshot) reports whether the row exists at all, so that a mismatch (412)
// is told from a missing row (404) without a read before the write.
const updateSQL = `WITH upd AS (
	UPDATE products SET name = $2, description = $3, price_cents = $4,
		version = version + 1, updated_at = now()
	WHERE id = $1 AND ($5::bigint[] IS NULL OR version = ANY($5))
	RETURNING ` + columns + `
)
SELECT true, ` + columns + ` FROM upd
UNION ALL
SELECT false, ` + columns + ` FROM products WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM upd)`

// Update replaces the fields of product id, bumping its version, if cond
// holds. It returns ErrNotFound or ErrConflict, or the id of the write's
// outbox row (0 when the store records none).
func (s *Store) Update(ctx context.Context, id uuid.UUID, in Input, cond Precondition) (Product, int64, error) {
	var p Product
	oid, err := s.inTx(ctx, "update", id, func(b *pgx.Batch) {
		s.count(opUpdate)
		b.Queue(updateSQL, id, in.Name, in.Description, in.PriceCents, versions(cond)).QueryRow(func(row pgx.Row) error {
			var updated bool
			err := row.Scan(&updated, &p.ID, &p.Name, &p.Description, &p.PriceCents, &p.Version, &p.CreatedAt, &p.UpdatedAt)
			return writeOutcome(err, updated, cond)
		})
	})
	return p, oid, err
}

const deleteSQL = `WITH del AS (
	DELETE FROM products WHERE id = $1 AND ($2::bigint[] IS NULL OR version = ANY($2))
	RETURNING id
)
SELECT true FROM del
UNION ALL
SELECT false FROM products WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM del)`

// Delete removes product id if cond holds. It returns ErrNotFound or
// ErrConflict, or the id of the write's outbox row (0 when the store
// records none).
func (s *Store) Delete(ctx context.Context, id uuid.UUID, cond Precondition) (int64, error) {
	return s.inTx(ctx, "delete", id, func(b *pgx.Batch) {
		s.count(opDelete)
		b.Queue(deleteSQL, id, versions(cond)).QueryRow(func(row pgx.Row) error {
			var deleted bool
			err := row.Scan(&deleted)
			return writeOutcome(err, deleted, cond)
		})
	})
}

// writeOutcome maps the result of a conditional write: no row at all is a
// 404; a row that was not written is a 412 if there was a condition, and
// otherwise (a concurrent delete won the race) a 404 too.
func writeOutcome(err error, written bool, cond Precondition) error {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case written:
		return nil
	case cond != nil:
		return ErrConflict
	}
	return ErrNotFound
}

func versions(cond Precondition) []int64 {
	if cond == nil {
		return nil
	}
	return append([]int64{}, cond...)
}

// inTx runs the write that queue adds to a batch in a transaction, with,
// when the outbox is on, the insert of its invalidation (the product's key
// and the list group) in the same round trip, and commits. A write that
// does not happen (404, 412) rolls the outbox row back with it. The
// beforeCommit hook runs before the commit, so tests can act while the
// write is not yet visible. It returns the outbox row's id, 0 without one.
//
// A write whose connection is lost before its COMMIT was sent (the pooled
// connection's backend was terminated, and the termination notice is what
// BEGIN or the batch read) did not commit: its transaction died with the
// session. It is retried once on a fresh connection (docs/design.md §3.19).
// A connection lost once COMMIT was sent leaves the outcome unknown, and
// the write fails with ErrOutcomeUnknown (an ErrUnavailable), counted.
func (s *Store) inTx(ctx context.Context, op string, id uuid.UUID, queue func(*pgx.Batch)) (int64, error) {
	oid, committing, err := s.tryTx(ctx, s.pool, op, id, queue)
	if err != nil && !committing && connectionLost(err) && ctx.Err() == nil {
		s.writeRetries.Add(1)
		c, cerr := s.freshConn(ctx)
		if cerr != nil {
			return 0, dbError(op, errors.Join(err, cerr))
		}
		defer s.closeFresh(c)
		oid, committing, err = s.tryTx(ctx, c, op, id, queue)
	}
	switch {
	case err == nil:
		return oid, nil
	case errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict):
		return 0, err
	case committing && connectionLost(err):
		s.unknownOutcomes.Add(1)
		return 0, fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, op, err)
	}
	return 0, dbError(op, err)
}

// beginner is where a write's transaction starts: the pool, or a fresh
// connection.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// tryTx is one attempt of inTx on db. committing reports whether COMMIT
// was sent, after which a lost connection leaves the outcome unknown.
func (s *Store) tryTx(ctx context.Context, db beginner, op string, id uuid.UUID, queue func(*pgx.Batch)) (oid int64, committing bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	queue(b)
	if s.outbox {
		s.count(opOutbox)
		b.Queue(insertOutboxSQL, []string{ProductKey(id)}, []string{ListGroup}).QueryRow(func(row pgx.Row) error {
			return row.Scan(&oid)
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, false, err
	}
	if s.beforeCommit != nil {
		s.beforeCommit(op, id)
	}
	return oid, true, tx.Commit(ctx)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return dbError("ping", s.pool.Ping(ctx))
}

// Count returns the number of products. It is for tests and operators and
// is not counted in [Store.Queries].
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n)
	return n, dbError("count", err)
}
