package meter

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tiercache/productcache/loadtest"
)

// StoredVersions is a [loadtest.StoredVersions] reading the products table
// of databaseURL, on a connection of its own for each check.
func StoredVersions(databaseURL string) loadtest.StoredVersions {
	return func(ctx context.Context, ids []string) (map[string]int64, error) {
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		found := map[string]int64{}
		for start := 0; start < len(ids); start += 1000 {
			batch := ids[start:min(start+1000, len(ids))]
			rows, err := conn.Query(ctx, "SELECT id::text, version FROM products WHERE id = ANY($1::uuid[])", batch)
			if err != nil {
				return nil, err
			}
			var id string
			var v int64
			_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error { found[id] = v; return nil })
			if err != nil {
				return nil, err
			}
		}
		return found, nil
	}
}
