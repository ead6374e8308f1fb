package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tiercache/productcache/tiercache"
)

type flagSet = flag.FlagSet

// config is the validated configuration of docs/design.md §5.
type config struct {
	addr        string
	databaseURL string
	redisURL    string
	mode        string // tiered, redis, local or none
	l1Size      int
	l1Policy    tiercache.L1Policy
	l1TTL       time.Duration
	l2TTL       time.Duration
	negativeTTL time.Duration
	namespace   string
	replicaID   string
	logLevel    slog.Level
	shutdown    time.Duration

	stalenessBound time.Duration // CACHE_STALENESS_BOUND: tiercache Options.StalenessBound
	redisMode      string        // REDIS_MODE: single, cluster or sentinel
	redisCAFile    string        // REDIS_CA_FILE: PEM bundle trusted for rediss:// (empty: system roots)
	shutdownDelay  time.Duration // SHUTDOWN_DELAY: serve this long after SIGTERM with /readyz 503
	outboxSweep    time.Duration // OUTBOX_SWEEP_INTERVAL: how often the outbox sweeper runs
	outboxGrace    time.Duration // OUTBOX_GRACE: age at which a pending outbox row is re-sent
	pprofAddr      string        // PPROF_ADDR: where net/http/pprof listens; empty: nowhere
	replayWindow   time.Duration // OUTBOX_REPLAY_WINDOW: how long done outbox rows are kept for a replay (0: none)
	minReplicasAck int           // REDIS_MIN_REPLICAS_ACK: tiercache Options.MinReplicasAck (auto: 0)
	waitTimeout    time.Duration // REDIS_WAIT_TIMEOUT: tiercache Options.ReplicaAckTimeout
	topologyEvery  time.Duration // REDIS_TOPOLOGY_INTERVAL: tiercache Options.TopologyInterval
	staleIfError   time.Duration // CACHE_STALE_IF_ERROR: default fail-safe allowance (0: off)
	softTimeout    time.Duration // CACHE_SOFT_TIMEOUT: opted-in reads answer stale after it (0: off)
	failSafeL2TTL  time.Duration // CACHE_FAIL_SAFE_L2_TTL: tiercache Options.FailSafeL2TTL (0: no copies in Redis)
	refreshAhead   float64       // CACHE_REFRESH_AHEAD: tiercache Options.RefreshAhead (0 here: off, -1 there)
	scriptFreeMiss bool          // CACHE_MISS_PATH plain: tiercache Options.ScriptFreeMiss
	otlpEndpoint   string        // OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP receiver of the traces; empty: no tracing

	pool  *pgxpool.Config // parsed DATABASE_URL
	redis *redisConfig    // REDIS_URL parsed for REDIS_MODE; nil when the mode needs no Redis
}

// setting is one variable of docs/design.md §5 and its flag.
type setting struct {
	env, flag, def, usage string
	val                   string
}

func settings() []*setting {
	return []*setting{
		{env: "ADDR", flag: "addr", def: ":8080", usage: "listen address"},
		{env: "DATABASE_URL", flag: "database-url", def: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", usage: "PostgreSQL URL (pgx)"},
		{env: "REDIS_URL", flag: "redis-url", def: "redis://127.0.0.1:6379/0", usage: "Redis URL (go-redis; rediss:// for TLS)"},
		{env: "CACHE_MODE", flag: "cache-mode", def: "tiered", usage: "tiered (L1+L2), redis (L2 only), local (L1 only, one replica) or none"},
		{env: "CACHE_L1_SIZE", flag: "cache-l1-size", def: "10000", usage: "L1 entries"},
		{env: "CACHE_L1_POLICY", flag: "cache-l1-policy", def: "2q", usage: "what a full L1 evicts: 2q (scan-resistant) or lru"},
		{env: "CACHE_L1_TTL", flag: "cache-l1-ttl", def: "30s", usage: "maximum age of an L1 entry: the staleness bound"},
		{env: "CACHE_L2_TTL", flag: "cache-l2-ttl", def: "1h", usage: "Redis TTL of a value, with jitter"},
		{env: "CACHE_REFRESH_AHEAD", flag: "cache-refresh-ahead", def: "0.1", usage: "last part of CACHE_L2_TTL in which a read refreshes the value in the background (one replica loads); 0 turns it off"},
		{env: "CACHE_MISS_PATH", flag: "cache-miss-path", def: "lua", usage: "how a miss takes its Redis lease and fills Redis: lua (two scripts) or plain (plain commands and WATCH/MULTI/EXEC, which the Redis ACL must allow)"},
		{env: "CACHE_NEGATIVE_TTL", flag: "cache-negative-ttl", def: "30s", usage: "lifetime of a cached not-found"},
		{env: "CACHE_NAMESPACE", flag: "cache-namespace", def: "productsd", usage: "prefix of every Redis key and of the invalidation channel"},
		{env: "REPLICA_ID", flag: "replica-id", def: "", usage: "this replica's name in messages and metrics (default hostname-pid)"},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error"},
		{env: "SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: "10s", usage: "how long a graceful shutdown may take"},
		{env: "CACHE_STALENESS_BOUND", flag: "cache-staleness-bound", def: "25ms", usage: "how far behind the invalidation stream L1 may be before it is bypassed"},
		{env: "REDIS_MODE", flag: "redis-mode", def: "single", usage: "single (REDIS_URL as one node), cluster or sentinel"},
		{env: "REDIS_CA_FILE", flag: "redis-ca-file", def: "", usage: "PEM file of the CA that signed Redis's TLS certificate (rediss://); default the system roots"},
		{env: "SHUTDOWN_DELAY", flag: "shutdown-delay", def: "0s", usage: "after SIGTERM, keep serving this long with /readyz answering 503, then shut down"},
		{env: "OUTBOX_SWEEP_INTERVAL", flag: "outbox-sweep-interval", def: "500ms", usage: "how often each replica re-sends invalidations its writers could not deliver"},
		{env: "OUTBOX_GRACE", flag: "outbox-grace", def: "1s", usage: "age at which an undelivered invalidation is re-sent by the sweeper"},
		{env: "OUTBOX_REPLAY_WINDOW", flag: "outbox-replay-window", def: "30s", usage: "how long delivered invalidations are kept, to be re-sent when the Redis master changes; 0 keeps none"},
		{env: "REDIS_MIN_REPLICAS_ACK", flag: "redis-min-replicas-ack", def: "auto", usage: "Redis replicas that must acknowledge an invalidation (WAIT) before it is done: auto (1 where the master has replicas, else 0) or a number"},
		{env: "REDIS_WAIT_TIMEOUT", flag: "redis-wait-timeout", def: "20ms", usage: "how long an invalidation waits for REDIS_MIN_REPLICAS_ACK replicas before it is deferred to the retry and the outbox"},
		{env: "REDIS_TOPOLOGY_INTERVAL", flag: "redis-topology-interval", def: "200ms", usage: "REDIS_MODE cluster: how often the invalidation subscriber checks that its node still masters the channel's slot, and moves to the new master when not"},
		{env: "CACHE_STALE_IF_ERROR", flag: "cache-stale-if-error", def: "0s", usage: "when the database fails, how stale a product read without a stale-if-error directive may be answered (labelled, with Age); 0 (the default): never"},
		{env: "CACHE_SOFT_TIMEOUT", flag: "cache-soft-timeout", def: "0s", usage: "a database read slower than this answers a read that accepts stale values with its stale copy, the read going on; 0 (the default): off"},
		{env: "CACHE_FAIL_SAFE_L2_TTL", flag: "cache-fail-safe-l2-ttl", def: "5m", usage: "every fill also writes a fail-safe copy of the product in Redis, kept this long, so that any replica can answer a read that accepts stale values with it when the database fails; the largest stale-if-error worth honouring; 0: none (each replica only its own copies)"},
		{env: "PPROF_ADDR", flag: "pprof-addr", def: "", usage: "serve net/http/pprof on this address (e.g. 127.0.0.1:6060), apart from the API; empty (the default) serves it nowhere"},
		{env: "OTEL_EXPORTER_OTLP_ENDPOINT", flag: "otlp-endpoint", def: "", usage: "OpenTelemetry: trace requests, cache reads, Redis commands and queries, and export the spans over OTLP/HTTP to this base URL (e.g. http://127.0.0.1:4318); empty (the default): no tracing, no cost"},
	}
}

// parseConfig reads the environment, then the flags of command cmd (extra
// adds the command's own), and validates the result. An error names the
// variable at fault, on one line.
func parseConfig(cmd string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flagSet)) (config, error) {
	fs := flag.NewFlagSet("productsd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	ss := settings()
	for _, s := range ss {
		s.val = s.def
		if v := getenv(s.env); v != "" {
			s.val = v
		}
		fs.StringVar(&s.val, s.flag, s.val, s.usage+" ($"+s.env+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	vals := make(map[string]string, len(ss))
	for _, s := range ss {
		vals[s.env] = s.val
	}
	return resolve(vals)
}

// resolve turns the settings into a config.
func resolve(v map[string]string) (config, error) {
	c := config{
		addr: v["ADDR"], databaseURL: v["DATABASE_URL"], redisURL: v["REDIS_URL"],
		mode: v["CACHE_MODE"], namespace: v["CACHE_NAMESPACE"], replicaID: v["REPLICA_ID"],
	}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		check(fmt.Errorf("ADDR: invalid listen address %q, want host:port", c.addr))
	}
	switch c.mode {
	case "tiered", "redis", "local", "none":
	default:
		check(fmt.Errorf("CACHE_MODE: invalid mode %q, want tiered, redis, local or none", c.mode))
	}
	var err error
	c.l1Size, err = positiveInt("CACHE_L1_SIZE", v["CACHE_L1_SIZE"])
	check(err)
	if c.l1Policy, err = tiercache.ParseL1Policy(v["CACHE_L1_POLICY"]); err != nil {
		check(fmt.Errorf("CACHE_L1_POLICY: unknown policy %q, want 2q or lru", v["CACHE_L1_POLICY"]))
	}
	c.l1TTL, err = positiveDuration("CACHE_L1_TTL", v["CACHE_L1_TTL"])
	check(err)
	c.l2TTL, err = positiveDuration("CACHE_L2_TTL", v["CACHE_L2_TTL"])
	check(err)
	c.refreshAhead, err = fraction("CACHE_REFRESH_AHEAD", v["CACHE_REFRESH_AHEAD"])
	check(err)
	switch v["CACHE_MISS_PATH"] {
	case "lua":
	case "plain":
		c.scriptFreeMiss = true
	default:
		check(fmt.Errorf("CACHE_MISS_PATH: invalid miss path %q, want lua or plain", v["CACHE_MISS_PATH"]))
	}
	c.negativeTTL, err = positiveDuration("CACHE_NEGATIVE_TTL", v["CACHE_NEGATIVE_TTL"])
	check(err)
	c.shutdown, err = positiveDuration("SHUTDOWN_TIMEOUT", v["SHUTDOWN_TIMEOUT"])
	check(err)
	c.stalenessBound, err = positiveDuration("CACHE_STALENESS_BOUND", v["CACHE_STALENESS_BOUND"])
	check(err)
	c.shutdownDelay, err = nonNegativeDuration("SHUTDOWN_DELAY", v["SHUTDOWN_DELAY"])
	check(err)
	c.outboxSweep, err = positiveDuration("OUTBOX_SWEEP_INTERVAL", v["OUTBOX_SWEEP_INTERVAL"])
	check(err)
	c.outboxGrace, err = positiveDuration("OUTBOX_GRACE", v["OUTBOX_GRACE"])
	check(err)
	c.replayWindow, err = nonNegativeDuration("OUTBOX_REPLAY_WINDOW", v["OUTBOX_REPLAY_WINDOW"])
	check(err)
	if c.replayWindow == 0 {
		c.replayWindow = -1 // products.OutboxOptions: negative keeps none
	}
	c.minReplicasAck, err = replicasAck(v["REDIS_MIN_REPLICAS_ACK"])
	check(err)
	c.waitTimeout, err = positiveDuration("REDIS_WAIT_TIMEOUT", v["REDIS_WAIT_TIMEOUT"])
	check(err)
	c.topologyEvery, err = positiveDuration("REDIS_TOPOLOGY_INTERVAL", v["REDIS_TOPOLOGY_INTERVAL"])
	check(err)
	c.staleIfError, c.softTimeout, c.failSafeL2TTL, err = failSafe(v)
	check(err)
	c.redisMode, c.redisCAFile = v["REDIS_MODE"], v["REDIS_CA_FILE"]
	if c.pprofAddr = v["PPROF_ADDR"]; c.pprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.pprofAddr); err != nil {
			check(fmt.Errorf("PPROF_ADDR: invalid listen address %q, want host:port", c.pprofAddr))
		}
	}
	if c.otlpEndpoint = v["OTEL_EXPORTER_OTLP_ENDPOINT"]; c.otlpEndpoint != "" {
		if u, err := url.Parse(c.otlpEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			check(fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: invalid URL %q, want http(s)://host:port", c.otlpEndpoint))
		}
	}
	switch c.redisMode {
	case "single", "cluster", "sentinel":
	default:
		check(fmt.Errorf("REDIS_MODE: invalid mode %q, want single, cluster or sentinel", c.redisMode))
	}
	if c.mode == "tiered" && c.l1TTL > 0 && c.l2TTL > 0 && c.l1TTL > c.l2TTL {
		check(fmt.Errorf("CACHE_L1_TTL: %v exceeds CACHE_L2_TTL %v", c.l1TTL, c.l2TTL))
	}
	if c.namespace == "" {
		check(errors.New("CACHE_NAMESPACE: must not be empty"))
	}
	if err := c.logLevel.UnmarshalText([]byte(v["LOG_LEVEL"])); err != nil {
		check(fmt.Errorf("LOG_LEVEL: invalid level %q, want debug, info, warn or error", v["LOG_LEVEL"]))
	}
	if c.pool, err = pgxpool.ParseConfig(c.databaseURL); err != nil {
		check(fmt.Errorf("DATABASE_URL: %s", redactPassword(err.Error(), c.databaseURL)))
	}
	if c.mode == "tiered" || c.mode == "redis" {
		c.redis, err = parseRedis(c.redisMode, c.redisURL, c.redisCAFile)
		if err != nil {
			check(errors.New(redactPassword(err.Error(), c.redisURL)))
		}
	}
	if c.replicaID == "" {
		host, _ := os.Hostname()
		c.replicaID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if len(errs) > 0 {
		return config{}, errs[0]
	}
	return c, nil
}

// failSafe parses CACHE_STALE_IF_ERROR, CACHE_SOFT_TIMEOUT and
// CACHE_FAIL_SAFE_L2_TTL (docs/design.md §3.16).
func failSafe(v map[string]string) (stale, soft, l2TTL time.Duration, err error) {
	if stale, err = nonNegativeDuration("CACHE_STALE_IF_ERROR", v["CACHE_STALE_IF_ERROR"]); err != nil {
		return 0, 0, 0, err
	}
	if soft, err = nonNegativeDuration("CACHE_SOFT_TIMEOUT", v["CACHE_SOFT_TIMEOUT"]); err != nil {
		return 0, 0, 0, err
	}
	l2TTL, err = nonNegativeDuration("CACHE_FAIL_SAFE_L2_TTL", v["CACHE_FAIL_SAFE_L2_TTL"])
	return stale, soft, l2TTL, err
}

// replicasAck parses REDIS_MIN_REPLICAS_ACK: "auto" is tiercache's
// automatic 0, "0" never waits (tiercache.NoReplicasAck).
func replicasAck(s string) (int, error) {
	if s == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("REDIS_MIN_REPLICAS_ACK: invalid value %q, want auto or a number of replicas", s)
	}
	if n == 0 {
		return tiercache.NoReplicasAck, nil
	}
	return n, nil
}

func positiveInt(name, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s: invalid integer %q", name, s)
	}
	if n < 1 {
		return 0, fmt.Errorf("%s: %d, want at least 1", name, n)
	}
	return n, nil
}

// fraction parses a number from 0 up to (not including) 1.
func fraction(name, s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f >= 1 {
		return 0, fmt.Errorf("%s: %q, want a number from 0 to below 1", name, s)
	}
	return f, nil
}

func nonNegativeDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: invalid duration %q", name, s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s: %v, want zero or a positive duration", name, d)
	}
	return d, nil
}

func positiveDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: invalid duration %q", name, s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %v, want a positive duration", name, d)
	}
	return d, nil
}

// cacheMode maps CACHE_MODE to the tiercache mode; ok is false for none.
func (c config) cacheMode() (tiercache.Mode, bool) {
	switch c.mode {
	case "tiered":
		return tiercache.ModeTiered, true
	case "redis":
		return tiercache.ModeL2Only, true
	case "local":
		return tiercache.ModeL1Only, true
	}
	return 0, false
}

// userinfoRE finds the password of a URL even when the URL as a whole does
// not parse: scheme://user:PASSWORD@...
var userinfoRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:([^/@]+)@`)

// redactPassword replaces the password of rawURL wherever msg repeats it
// (url.Parse errors quote the whole URL), so a refused setting never
// prints a secret.
func redactPassword(msg, rawURL string) string {
	m := userinfoRE.FindStringSubmatch(rawURL)
	if m == nil {
		return msg
	}
	return strings.ReplaceAll(msg, m[1], "xxxxx")
}
