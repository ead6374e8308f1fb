package products

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics is the request duration histogram.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "productsd_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern, method and status.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "status"})}
	reg.MustRegister(m.duration)
	return m
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	start  time.Duration // when the request arrived, since processStart
}

// requestStart is when the request w answers arrived, as instrument read
// it (a time.Time with the monotonic reading), or the zero Time if w was
// not made by instrument. A read of the cache may start the freshness lease
// there (tiercache.Cache.GetAt) instead of reading the clock again.
func requestStart(w http.ResponseWriter) time.Time {
	for {
		switch x := w.(type) {
		case *statusWriter:
			return processStart.Add(x.start)
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return time.Time{}
		}
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerPool recycles statusWriters: one per request is the largest
// allocation of an L1 hit otherwise.
var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

// processStart is the origin of the monotonic readings of instrument.
var processStart = time.Now()

// instrument times h under route, and logs one line per request at debug.
// The series of a GET answered 200, the common case, is resolved once,
// when first used (not before: a route no GET reaches shows no such
// series); the duration takes two readings of the monotonic clock
// (time.Since of a time.Time that has one), where time.Now and time.Since
// would take three.
func (m *httpMetrics) instrument(logger *slog.Logger, route string, h http.Handler) http.Handler {
	byMethod := m.duration.MustCurryWith(prometheus.Labels{"route": route})
	getOK := sync.OnceValue(func() prometheus.Observer { return byMethod.WithLabelValues(http.MethodGet, "200") })
	debug := logger.Enabled(context.Background(), slog.LevelDebug) // the level is fixed at start
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Since(processStart)
		sw := writerPool.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, start: start}
		h.ServeHTTP(sw, r)
		status := sw.status
		*sw = statusWriter{}
		writerPool.Put(sw)
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(processStart) - start
		if status == http.StatusOK && r.Method == http.MethodGet {
			getOK().Observe(d.Seconds())
		} else {
			byMethod.WithLabelValues(methodLabel(r.Method), statusText(status)).Observe(d.Seconds())
		}
		if debug {
			logger.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route,
				"status", status, "duration_ms", float64(d.Microseconds())/1000, "remote", r.RemoteAddr)
		}
	})
}

// methodLabel bounds the method label: net/http accepts any token as a
// method, and a client must not be able to mint new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusText returns the decimal status code without allocating for the
// common ones.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// serviceCollector exports, at scrape time, the store's query counters and
// the pgxpool statistics. The cache's own statistics come from
// tiercacheprom.
type serviceCollector struct {
	svc          *Service
	queries      *prometheus.Desc
	retries      *prometheus.Desc
	writeRetries *prometheus.Desc
	unknown      *prometheus.Desc
	pool         map[string]*prometheus.Desc
	info         *prometheus.Desc
	outbox       outboxDescs
}

// outboxDescs describe the invalidation outbox (docs/design.md §3 rule 14).
type outboxDescs struct {
	pending, oldest, resent, errors *prometheus.Desc
	replays, relayed                *prometheus.Desc
}

func newOutboxDescs() outboxDescs {
	return outboxDescs{
		pending: prometheus.NewDesc("productsd_outbox_pending",
			"Invalidations in the outbox table not yet confirmed delivered to Redis, counted at this replica's last count: every sweep, every 10s while it cannot reach Redis (one table for all replicas: aggregate with max).", nil, nil),
		oldest: prometheus.NewDesc("productsd_outbox_oldest_pending_age_seconds",
			"Age of the oldest unconfirmed invalidation in the outbox table, at this replica's last count (aggregate with max); over 10s deserves an alert.", nil, nil),
		resent: prometheus.NewDesc("productsd_outbox_resent_total",
			"Outbox invalidations this replica's sweeper re-sent to Redis and deleted.", nil, nil),
		errors: prometheus.NewDesc("productsd_outbox_sweep_errors_total",
			"Outbox sweeps, re-sends and done-marks of this replica that failed (database or Redis).", nil, nil),
		replays: prometheus.NewDesc("productsd_outbox_replays_total",
			"Times this replica re-sent the outbox replay window after the Redis master changed (docs/design.md §3.15).", nil, nil),
		relayed: prometheus.NewDesc("productsd_outbox_relayed_total",
			"Outbox invalidations this replica sent for a writer cut off from Redis, on its PostgreSQL NOTIFY (docs/design.md §3.15).", nil, nil),
	}
}

func (d outboxDescs) describe(ch chan<- *prometheus.Desc) {
	ch <- d.pending
	ch <- d.oldest
	ch <- d.resent
	ch <- d.errors
	ch <- d.replays
	ch <- d.relayed
}

// collect reports o's figures, zeros when o is nil (no outbox).
func (d outboxDescs) collect(ch chan<- prometheus.Metric, o *outbox) {
	var pending, oldest, resent, errs, replays, relayed float64
	if o != nil {
		pending, oldest = float64(o.pending.Load()), math.Float64frombits(o.oldest.Load())
		resent, errs = float64(o.resent.Load()), float64(o.errs.Load())
		replays, relayed = float64(o.replays.Load()), float64(o.relayed.Load())
	}
	ch <- prometheus.MustNewConstMetric(d.replays, prometheus.CounterValue, replays)
	ch <- prometheus.MustNewConstMetric(d.relayed, prometheus.CounterValue, relayed)
	ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, pending)
	ch <- prometheus.MustNewConstMetric(d.oldest, prometheus.GaugeValue, oldest)
	ch <- prometheus.MustNewConstMetric(d.resent, prometheus.CounterValue, resent)
	ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, errs)
}

func newServiceCollector(svc *Service) *serviceCollector {
	c := &serviceCollector{
		svc: svc,
		queries: prometheus.NewDesc("productsd_db_queries_total",
			"Statements the store sent to PostgreSQL, by operation (BEGIN and COMMIT not counted).", []string{"op"}, nil),
		retries: prometheus.NewDesc("productsd_db_read_retries_total",
			"Reads retried once on a new connection after theirs was lost (backend terminated, reset).", nil, nil),
		writeRetries: prometheus.NewDesc("productsd_db_write_retries_total",
			"Writes retried once on a new connection after theirs was lost before COMMIT was sent.", nil, nil),
		unknown: prometheus.NewDesc("productsd_db_write_outcome_unknown_total",
			"Writes that failed (503) because their connection was lost after COMMIT was sent: applied or not, nobody knows.", nil, nil),
		info: prometheus.NewDesc("productsd_cache_info",
			"The cache mode this replica runs in (value always 1).", []string{"mode", "replica"}, nil),
		pool:   map[string]*prometheus.Desc{},
		outbox: newOutboxDescs(),
	}
	for name, help := range poolMetricHelp {
		c.pool[name] = prometheus.NewDesc("productsd_db_pool_"+name, help, nil, nil)
	}
	return c
}

var poolMetricHelp = map[string]string{
	"acquired_conns":                   "Connections in use now.",
	"idle_conns":                       "Idle connections now.",
	"total_conns":                      "Open connections now.",
	"constructing_conns":               "Connections being opened now.",
	"max_conns":                        "The pool's connection limit.",
	"acquires_total":                   "Connections acquired from the pool.",
	"acquire_duration_seconds_total":   "Time spent acquiring connections.",
	"empty_acquires_total":             "Acquires that had to wait for a connection.",
	"canceled_acquires_total":          "Acquires canceled by their context.",
	"new_conns_total":                  "Connections opened.",
	"max_lifetime_destroys_total":      "Connections closed for reaching their maximum lifetime.",
	"max_idle_destroys_total":          "Connections closed for idling too long.",
	"empty_acquire_wait_seconds_total": "Time spent waiting for a connection by acquires that found none idle.",
}

// Describe sends every descriptor.
func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queries
	ch <- c.retries
	ch <- c.writeRetries
	ch <- c.unknown
	ch <- c.info
	c.outbox.describe(ch)
	for _, d := range c.pool {
		ch <- d
	}
}

// Collect reads the counters now.
func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, op := range Ops {
		ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(c.svc.store.Queries(op)), op)
	}
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(c.svc.store.ReadRetries()))
	ch <- prometheus.MustNewConstMetric(c.writeRetries, prometheus.CounterValue, float64(c.svc.store.WriteRetries()))
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.CounterValue, float64(c.svc.store.UnknownOutcomes()))
	replica := ""
	if c.svc.cache != nil {
		replica = c.svc.cache.ReplicaID()
	}
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, c.svc.Mode(), replica)
	c.outbox.collect(ch, c.svc.outbox)
	st := c.svc.store.pool.Stat()
	vals := map[string]float64{
		"acquired_conns":                   float64(st.AcquiredConns()),
		"idle_conns":                       float64(st.IdleConns()),
		"total_conns":                      float64(st.TotalConns()),
		"constructing_conns":               float64(st.ConstructingConns()),
		"max_conns":                        float64(st.MaxConns()),
		"acquires_total":                   float64(st.AcquireCount()),
		"acquire_duration_seconds_total":   st.AcquireDuration().Seconds(),
		"empty_acquires_total":             float64(st.EmptyAcquireCount()),
		"canceled_acquires_total":          float64(st.CanceledAcquireCount()),
		"new_conns_total":                  float64(st.NewConnsCount()),
		"max_lifetime_destroys_total":      float64(st.MaxLifetimeDestroyCount()),
		"max_idle_destroys_total":          float64(st.MaxIdleDestroyCount()),
		"empty_acquire_wait_seconds_total": st.EmptyAcquireWaitTime().Seconds(),
	}
	for name, d := range c.pool {
		typ := prometheus.GaugeValue
		if len(name) > 6 && name[len(name)-6:] == "_total" {
			typ = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(d, typ, vals[name])
	}
}

var _ prometheus.Collector = (*serviceCollector)(nil)
