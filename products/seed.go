package products

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// seedBatch is the number of rows per COPY.
const seedBatch = 10000

// Seed inserts n demo products with COPY, in batches, and calls progress
// (if not nil) with the running total after each batch. It returns the
// number of rows inserted.
func (s *Store) Seed(ctx context.Context, n int, progress func(done int)) (int, error) {
	done := 0
	for done < n {
		size := min(seedBatch, n-done)
		rows, err := seedRows(done, size)
		if err != nil {
			return done, err
		}
		s.count(opSeed)
		got, err := s.pool.CopyFrom(ctx, pgx.Identifier{"products"},
			[]string{"id", "name", "description", "price_cents", "version", "created_at", "updated_at"},
			pgx.CopyFromRows(rows))
		done += int(got)
		if err != nil {
			return done, dbError("seed", err)
		}
		if progress != nil {
			progress(done)
		}
	}
	return done, nil
}

func seedRows(start, size int) ([][]any, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([][]any, size)
	for i := range rows {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("products: seed: %w", err)
		}
		k := start + i + 1
		price := int64(100 + (k*7919)%99900)
		rows[i] = []any{id, fmt.Sprintf("Product %d", k), fmt.Sprintf("Demo product number %d.", k), price, int64(1), now, now}
	}
	return rows, nil
}
