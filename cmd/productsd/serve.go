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
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/httpserver"
	"github.com/tiercache/productcache/internal/ratelog"
	"github.com/tiercache/productcache/products"
	"github.com/tiercache/productcache/tiercache"
)

// deps are the connections a command opens, closed in reverse order.
type deps struct {
	pool      *pgxpool.Pool
	rdb       redis.UniversalClient            // nil when the mode needs no Redis
	stopRedis func()                           // stops the client's helpers (sentinel watch)
	cache     *tiercache.Cache[products.Entry] // nil in mode none
	svc       *products.Service
	tracing   *tracing // nil unless OTEL_EXPORTER_OTLP_ENDPOINT is set
}

// open builds the pool, the Redis client and the cache. None of them
// connects yet: a database or Redis that is down at start is retried later,
// not fatal.
func open(ctx context.Context, cfg config, logger *slog.Logger) (*deps, error) {
	tr, err := newTracing(ctx, cfg.otlpEndpoint, cfg.replicaID)
	if err != nil {
		return nil, err
	}
	pc := cfg.pool.Copy()
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 3 * time.Second
	}
	tr.pool(pc)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		_ = tr.shutdown(ctx)
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	d := &deps{pool: pool, tracing: tr}
	mode, cached := cfg.cacheMode()
	// A new Redis master, announced by the sentinels or seen by the cache
	// as a new run_id, makes the outbox replay its window (docs/design.md
	// §3.15); the service that replays is made last.
	var svc atomic.Pointer[products.Service]
	masterChanged := func() {
		if s := svc.Load(); s != nil {
			s.MasterChanged()
		}
	}
	if cfg.redis != nil {
		rc := *cfg.redis
		rc.onSwitch = masterChanged
		d.rdb, d.stopRedis = rc.newClient(logger)
		if err := tr.redis(d.rdb); err != nil {
			d.close()
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: tracing Redis: %w", err)
		}
	}
	if cached {
		d.cache, err = tiercache.New[products.Entry](d.rdb, products.EntryCodec{}, tiercache.Options{
			Namespace:         cfg.namespace,
			ReplicaID:         cfg.replicaID,
			Mode:              mode,
			Standalone:        mode == tiercache.ModeL1Only,
			L1Size:            cfg.l1Size,
			L1Policy:          cfg.l1Policy,
			L1TTL:             cfg.l1TTL,
			L2TTL:             cfg.l2TTL,
			NegativeTTL:       cfg.negativeTTL,
			RefreshAhead:      refreshAhead(cfg.refreshAhead),
			ScriptFreeMiss:    cfg.scriptFreeMiss,
			FailSafeL2TTL:     cfg.failSafeL2TTL,
			StalenessBound:    cfg.stalenessBound,
			MinReplicasAck:    cfg.minReplicasAck,
			ReplicaAckTimeout: cfg.waitTimeout,
			TopologyInterval:  cfg.topologyEvery,
			OnMasterChange:    masterChanged,
			Logger:            logger,
			Tracer:            tr.cache(),
		})
		if err != nil {
			d.close()
			return nil, fmt.Errorf("CACHE_MODE %s: %w", cfg.mode, err)
		}
	}
	d.svc = products.NewService(products.NewStore(pool), d.cache, d.rdb, logger)
	d.svc.SetFailSafe(cfg.staleIfError, cfg.softTimeout)
	svc.Store(d.svc)
	return d, nil
}

// close releases in order: the cache (its subscriber and retry loop), then
// Redis, then the database, and last exports the spans left.
func (d *deps) close() {
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.tracing.shutdown(ctx)
	}()
	if d.cache != nil {
		_ = d.cache.Close()
	}
	if d.rdb != nil {
		_ = d.rdb.Close()
		d.stopRedis()
	}
	d.pool.Close()
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// redisLogOnce routes go-redis's own log lines (a process-wide setting) into
// the first server's JSON log.
var redisLogOnce sync.Once

// redisLogger writes go-redis's lines at most once a second per format:
// while Redis is down it reports every failed dial.
type redisLogger struct{ limit *ratelog.Limiter }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.limit.Warn(format, fmt.Sprintf(format, v...), "component", "go-redis")
}

// firstCheckTimeout bounds the database check (and migration) a replica
// makes before it serves: past it, the replica serves 503s and keeps
// trying in the background.
const firstCheckTimeout = 10 * time.Second

// serve runs the HTTP server until ctx ends, then drains and shuts down.
//
// Start: the listener is bound at once (a bad ADDR fails fast, and
// connections wait in its backlog instead of being refused), but nothing
// is served until the first database check and migration attempt has
// finished, so a fresh replica does not answer 503 while its pool dials.
// A database that is down at start is retried in the background while the
// server answers /healthz and 503s: no crash loop.
//
// Stop: /readyz answers 503 at once and keep-alives end, the server keeps
// serving for cfg.shutdownDelay while load balancers take the replica out,
// then it stops accepting and drains in-flight requests within
// cfg.shutdown, and closes the cache, Redis and the pool.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := newLogger(stderr, cfg.logLevel).With("replica", cfg.replicaID)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogger{ratelog.New(logger, time.Second)}) })
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := httpserver.New(d.tracing.handler(products.NewServer(logger, d.svc, reg)), slog.NewLogLogger(logger.Handler(), slog.LevelWarn))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	stopMigrations, schemaReady := migrateFirst(ctx, d.svc, logger)
	defer stopMigrations()
	if d.rdb != nil {
		pctx, stopPreflight := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); redisPreflight(pctx, d.rdb, cfg.namespace, logger) }()
		defer func() { stopPreflight(); <-done }()
	}

	fmt.Fprintf(stdout, "productsd listening on %s (mode %s, replica %s)\n", displayURL(ln.Addr()), cfg.mode, cfg.replicaID)
	logger.Info("productsd: listening", "addr", ln.Addr().String(), "mode", cfg.mode, "l1_ttl", cfg.l1TTL.String(), "redis", redisTopology(cfg),
		"outbox_grace", cfg.outboxGrace.String(), "outbox_sweep", cfg.outboxSweep.String())

	// Once the schema is ready the outbox marker and sweeper run (docs/design.md §3
	// rule 14) until the server has drained its requests; they stop before
	// the cache, Redis and the pool close.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() {
		select {
		case <-schemaReady:
		case <-bgCtx.Done():
			return
		}
		d.svc.RunOutbox(bgCtx, products.OutboxOptions{SweepInterval: cfg.outboxSweep, Grace: cfg.outboxGrace, ReplayWindow: cfg.replayWindow})
	})
	defer func() {
		stopBackground()
		bg.Wait()
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
	return drain(ctx, cfg, srv, d.svc, errc, logger)
}

// migrateFirst makes the first migration attempt (bounded by
// firstCheckTimeout and ctx) before it returns; if that fails, it keeps
// retrying in the background. ready is closed once the schema is migrated.
// The returned function stops the retries and waits for them.
func migrateFirst(ctx context.Context, svc *products.Service, logger *slog.Logger) (stop func(), ready <-chan struct{}) {
	migCtx, cancel := context.WithCancel(ctx)
	first := make(chan struct{})
	done := make(chan struct{})
	migrated := make(chan struct{})
	go func() {
		defer close(done)
		fctx, fcancel := context.WithTimeout(migCtx, firstCheckTimeout)
		err := svc.Migrate(fctx)
		fcancel()
		close(first)
		if err != nil {
			logger.Error("productsd: first migrations failed, retrying in the background", "err", err)
			err = svc.MigrateUntilDone(migCtx)
		}
		if err == nil {
			logger.Info("productsd: schema ready")
			close(migrated)
		}
	}()
	<-first
	return func() {
		cancel()
		<-done
	}, migrated
}

// drain runs the stop sequence of serve once ctx has ended.
func drain(ctx context.Context, cfg config, srv *http.Server, svc *products.Service, errc <-chan error, logger *slog.Logger) error {
	svc.SetDraining()
	srv.SetKeepAlivesEnabled(false) // clients re-dial, and reach another replica
	logger.Info("productsd: draining", "delay", cfg.shutdownDelay.String(), "timeout", cfg.shutdown.String())
	if cfg.shutdownDelay > 0 {
		t := time.NewTimer(cfg.shutdownDelay)
		select {
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		case <-t.C:
		}
	}
	logger.Info("productsd: shutting down")
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

// redisTopology is the Redis topology for the log, without credentials.
func redisTopology(cfg config) string {
	if cfg.redis == nil {
		return "none"
	}
	return cfg.redis.describe()
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

// refreshAhead maps CACHE_REFRESH_AHEAD to tiercache Options.RefreshAhead,
// where 0 means the default and a negative value turns it off.
func refreshAhead(f float64) float64 {
	if f == 0 {
		return -1
	}
	return f
}
