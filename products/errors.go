package products

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors of the product domain.
var (
	// ErrNotFound means no product has the id.
	ErrNotFound = errors.New("products: not found")
	// ErrConflict means an If-Match condition did not hold: the product
	// exists at another version.
	ErrConflict = errors.New("products: version mismatch")
	// ErrInvalid means the input was refused; the error is a
	// [*ValidationError] with the details.
	ErrInvalid = errors.New("products: invalid input")
	// ErrUnavailable means the database cannot be reached or is not ready
	// (its schema is not migrated yet).
	ErrUnavailable = errors.New("products: database unavailable")
	// ErrOutcomeUnknown means the connection to the database was lost
	// after a write's COMMIT was sent: the write may or may not have been
	// applied. It is an ErrUnavailable (503) that is never retried by the
	// server: the client reads the product, or retries with If-Match.
	ErrOutcomeUnknown = fmt.Errorf("%w (the write was sent; its outcome is unknown)", ErrUnavailable)
)

// dbError classifies an error from PostgreSQL: trouble reaching it becomes
// ErrUnavailable, anything the server answered stays as it is.
func dbError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("products: %s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError // refused at connect time, whatever the code (55000: database closed to connections)
	if errors.As(err, &pgErr) && !unavailableCode(pgErr.Code) && !errors.As(err, &connErr) {
		return fmt.Errorf("products: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// unavailableCode reports SQLSTATEs that mean "try again later": connection
// exceptions, the server shutting down or refusing connections, and a
// schema that is not there yet.
func unavailableCode(code string) bool {
	switch code {
	case pgerrcode.TooManyConnections,
		pgerrcode.UndefinedTable: // migrations have not run
		return true
	}
	return sessionEndedCode(code)
}
