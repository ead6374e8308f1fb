package products

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier is what a read needs: the pool, or one connection of it.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// retryRead runs read on the pool and, when it fails because its
// connection was lost (the backend was terminated, the connection reset),
// once more on a connection that has just answered a ping. Reads are
// idempotent, so the retry cannot do harm; writes never come here, because
// a write whose connection broke may or may not have committed.
func retryRead[T any](ctx context.Context, s *Store, read func(querier) (T, error)) (T, error) {
	v, err := read(s.pool)
	if err == nil || !connectionLost(err) || ctx.Err() != nil {
		return v, err
	}
	s.readRetries.Add(1)
	c, cerr := s.liveConn(ctx)
	if cerr != nil {
		return v, errors.Join(err, cerr)
	}
	defer c.Release()
	return read(c)
}

// maxPings bounds how many pooled connections liveConn tries: when every
// backend was terminated at once, each idle connection of the pool is dead.
const maxPings = 64

// liveConn acquires a pooled connection that answers a ping. A dead one
// fails the ping, closes itself and is dropped by the pool on release, so
// the loop ends with a working (often newly opened) connection.
func (s *Store) liveConn(ctx context.Context) (*pgxpool.Conn, error) {
	for i := 0; ; i++ {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		err = c.Ping(ctx)
		if err == nil {
			return c, nil
		}
		c.Release()
		if !connectionLost(err) || i == maxPings {
			return nil, err
		}
	}
}

// connectionLost reports errors that mean the connection, not the
// statement, failed: the server ended the session (admin shutdown, crash,
// a connection exception), the socket was reset or closed, or the stream
// ended mid-message. Anything the server answered about the statement
// itself is not one.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code
		return c == "57P01" || c == "57P02" || c == "57P03" || len(c) == 5 && c[:2] == "08"
	}
	return pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}
