package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/products"
	"github.com/tiercache/productcache/tiercache"
)

// deps are the connections a command opens, closed in reverse order.
type deps struct {
	pool  *pgxpool.Pool
	rdb   *redis.Client                    // nil when the mode needs no Redis
	cache *tiercache.Cache[products.Entry] // nil in mode none
	svc   *products.Service
}

// open builds the pool, the Redis client and the cache. None of them
// connects yet: a database or Redis that is down at start is retried later,
// not fatal.
func open(ctx context.Context, cfg config, logger *slog.Logger) (*deps, error) {
	pc := cfg.pool.Copy()
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 3 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	d := &deps{pool: pool}
	mode, cached := cfg.cacheMode()
	if cfg.redis != nil {
		d.rdb = redis.NewClient(redisOptions(cfg.redis))
	}
	if cached {
		var rdb redis.UniversalClient
		if d.rdb != nil {
			rdb = d.rdb
		}
		d.cache, err = tiercache.New[products.Entry](rdb, products.EntryCodec{}, tiercache.Options{
			Namespace:      cfg.namespace,
			ReplicaID:      cfg.replicaID,
			Mode:           mode,
			Standalone:     mode == tiercache.ModeL1Only,
			L1Size:         cfg.l1Size,
			L1TTL:          cfg.l1TTL,
			L2TTL:          cfg.l2TTL,
			NegativeTTL:    cfg.negativeTTL,
			StalenessBound: cfg.stalenessBound,
			Logger:         logger,
		})
		if err != nil {
			d.close()
			return nil, fmt.Errorf("CACHE_MODE %s: %w", cfg.mode, err)
		}
	}
	var health redis.UniversalClient
	if d.rdb != nil {
		health = d.rdb
	}
	d.svc = products.NewService(products.NewStore(pool), d.cache, health, logger)
	return d, nil
}

// redisOptions copies o with the timeouts a cache needs: every call is
// bounded by its context, and nothing waits long on a dead server.
func redisOptions(o *redis.Options) *redis.Options {
	c := *o
	c.ContextTimeoutEnabled = true
	if c.DialTimeout == 0 {
		c.DialTimeout = time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 500 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 500 * time.Millisecond
	}
	if c.PoolTimeout == 0 {
		c.PoolTimeout = time.Second
	}
	if c.DialerRetries == 0 {
		c.DialerRetries = 1 // the cache has its own breaker; fail fast
	}
	return &c
}

// close releases in order: the cache (its subscriber and retry loop), then
// Redis, then the database.
func (d *deps) close() {
	if d.cache != nil {
		_ = d.cache.Close()
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
	}
	d.pool.Close()
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// redisLogOnce routes go-redis's own log lines (a process-wide setting) into
// the first server's JSON log.
var redisLogOnce sync.Once

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...), "component", "go-redis")
}

// serve runs the HTTP server until ctx ends, then shuts down gracefully:
// stop accepting, drain in-flight requests, close the cache, Redis and the
// pool, all within cfg.shutdown.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, cfg.logLevel).With("replica", cfg.replicaID)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{logger}) })
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := &http.Server{
		Handler:           products.NewServer(logger, d.svc, reg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	fmt.Fprintf(stdout, "productsd listening on %s (mode %s, replica %s)\n", displayURL(ln.Addr()), cfg.mode, cfg.replicaID)
	logger.Info("productsd: listening", "addr", ln.Addr().String(), "mode", cfg.mode, "l1_ttl", cfg.l1TTL.String())

	// Migrations are retried in the background while the server already
	// answers /healthz and 503s, so a database that is late does not cause
	// a crash loop.
	migCtx, stopMigrations := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if d.svc.MigrateUntilDone(migCtx) == nil {
			logger.Info("productsd: schema ready")
		}
	}()
	defer func() {
		stopMigrations()
		wg.Wait()
	}()

	if cfg.pprofAddr != "" {
		stopPprof, err := servePprof(cfg.pprofAddr, stdout, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("productsd: shutting down", "timeout", cfg.shutdown.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("productsd: stopped")
	return nil
}

// servePprof serves net/http/pprof on its own listener at addr, never on
// the API's: profiles are for operators, and off unless PPROF_ADDR is set.
// It prints "pprof listening on URL"; the returned func closes it.
func servePprof(addr string, stdout io.Writer, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "pprof listening on %s/debug/pprof/\n", displayURL(ln.Addr()))
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("productsd: pprof server stopped", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}

// displayURL is the URL to print for a listener: an unspecified host
// (":8080", "0.0.0.0") is shown as 127.0.0.1.
func displayURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}
