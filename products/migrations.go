package products

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate brings the schema in the pool's search_path up to date. Several
// replicas may call it at once: a PostgreSQL advisory lock, keyed by the
// schema name, lets one of them apply the migrations and the others find
// them applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	var schema string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return dbError("migrate", err)
	}
	if schema == "" {
		return fmt.Errorf("products: migrate: no schema in the search_path exists")
	}
	h := fnv.New64a()
	h.Write([]byte("productsd-migrate:" + schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("products: migrate: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("products: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("products: migrate: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return dbError("migrate", err)
	}
	for _, r := range res {
		if logger != nil {
			logger.Info("products: migration applied", "version", r.Source.Version, "duration", r.Duration.String())
		}
	}
	return nil
}
