package products

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what a read needs: the pool, or one connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// retryRead runs read on the pool and, when it fails because its
// connection was lost (the backend was terminated, the connection reset),
// again on a connection opened for the retry, up to readRetries times. A
// fresh connection, not another pooled one: when backends are terminated
// in a sweep (every backend of the service, one after another), a pooled
// connection that still answers may be next, while a backend started after
// the sweep began is not on its list. More than one retry, because on a
// loaded machine a retry can take long enough for the next sweep to reach
// its fresh backend too. Reads are idempotent, so a retry cannot do harm;
// writes never come here: inTx retries a write only when its connection
// was lost before COMMIT was sent.
func retryRead[T any](ctx context.Context, s *Store, read func(querier) (T, error)) (T, error) {
	v, err := read(s.pool)
	for range readRetries {
		if err == nil || !connectionLost(err) || ctx.Err() != nil {
			return v, err
		}
		s.readRetries.Add(1)
		c, cerr := s.freshConn(ctx)
		if cerr != nil { // the database is unreachable: no retry will help
			return v, errors.Join(err, cerr)
		}
		v, err = readOn(s, c, read)
	}
	return v, err
}

// readRetries is how many times a read that lost its connection is tried
// again, each time on a fresh connection.
const readRetries = 3

// readOn runs read on c, a connection from freshConn, and closes it.
func readOn[T any](s *Store, c *pgx.Conn, read func(querier) (T, error)) (T, error) {
	defer s.closeFresh(c)
	return read(c)
}

// maxFreshConns bounds the connections opened for retries at once, so a
// mass termination under heavy load cannot open one per request.
const maxFreshConns = 4

// freshConn opens a connection outside the pool, with the pool's settings,
// waiting for a slot among maxFreshConns. A connection whose session the
// server ends while it starts (a sweep of pg_terminate_backend reaches a
// backend still in its startup: the connect fails with admin_shutdown) is
// opened again, up to freshConnectTries times; a server that refuses the
// connection (nothing listens, wrong password) is an answer at once.
func (s *Store) freshConn(ctx context.Context) (*pgx.Conn, error) {
	select {
	case s.freshSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cfg := s.pool.Config().ConnConfig
	if s.afterFreshConnect != nil {
		cfg.AfterConnect = s.afterFreshConnect
	}
	var err error
	for range freshConnectTries {
		var c *pgx.Conn
		if c, err = pgx.ConnectConfig(ctx, cfg); err == nil {
			return c, nil
		}
		if !connectionLost(err) || ctx.Err() != nil {
			break
		}
	}
	<-s.freshSlots
	return nil, err
}

// freshConnectTries is how many times freshConn opens a connection whose
// session the server ended during its startup.
const freshConnectTries = 3

func (s *Store) closeFresh(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
	<-s.freshSlots
}

// sessionEndedCode reports SQLSTATEs with which the server ended or
// refused the session: admin shutdown, crash, not accepting connections
// yet, or a connection exception (class 08).
func sessionEndedCode(code string) bool {
	switch code {
	case pgerrcode.AdminShutdown, pgerrcode.CrashShutdown, pgerrcode.CannotConnectNow:
		return true
	}
	return pgerrcode.IsConnectionException(code)
}

// connectionLost reports errors that mean the connection, not the
// statement, failed: the server ended the session (admin shutdown, crash,
// a connection exception), the socket was reset or closed, or the stream
// ended mid-message. Anything the server answered about the statement
// itself is not one.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return sessionEndedCode(pgErr.Code)
	}
	return pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}
