package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tiercache/productcache/products"
)

// migrate applies the schema migrations and exits.
func migrate(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, cfg.logLevel)
	cfg.mode = "none" // migrating needs no cache
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.svc.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// seed migrates, loads n demo products with COPY, printing progress, and
// retires the cached list pages of running replicas.
func seed(ctx context.Context, cfg config, n int, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, cfg.logLevel)
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.svc.Migrate(ctx); err != nil {
		return err
	}
	start := time.Now()
	done, err := d.svc.Store().Seed(ctx, n, func(done int) {
		fmt.Fprintf(stdout, "seeded %d/%d products\n", done, n)
	})
	if err != nil {
		return fmt.Errorf("seed: after %d products: %w", done, err)
	}
	fmt.Fprintf(stdout, "seeded %d products in %.2fs\n", done, time.Since(start).Seconds())
	if d.cache != nil && d.rdb != nil {
		invalidateLists(ctx, d, logger)
	}
	return nil
}

// invalidateLists retires every cached list page: the new products belong
// in them. Product keys need nothing: the ids are new.
func invalidateLists(ctx context.Context, d *deps, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.rdb.Ping(ctx).Err(); err != nil {
		logger.Warn("seed: redis unreachable, cached list pages of running replicas stay until they expire", "err", err)
		return
	}
	if err := d.cache.InvalidateGroup(ctx, products.ListGroup); err != nil {
		logger.Warn("seed: list pages not invalidated", "err", err)
	}
}
