package tiercacheprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/productcache/tiercache"
)

// StatsSource is what a [NewCollector] collector reads at every scrape.
// *[tiercache.Cache] implements it for every value type.
type StatsSource interface {
	Stats() tiercache.Stats
	State() tiercache.State
}

var (
	_ StatsSource          = (*tiercache.Cache[string])(nil)
	_ prometheus.Collector = (*collector)(nil)
)

// Options configures a collector. The zero value is ready to use.
type Options struct {
	// Namespace is the first part of every metric name. Default "tiercache".
	Namespace string
	// ConstLabels are added to every metric, for example
	// {"cache": "products"} when a process runs several caches. Default none.
	ConstLabels prometheus.Labels
}

// collector turns one snapshot of a cache's Stats and State into constant
// metrics. It keeps no state beyond its descriptors.
type collector struct {
	src     StatsSource
	descs   []*prometheus.Desc // every descriptor, once, for Describe
	values  []value
	lag     *prometheus.Desc
	redisUp *prometheus.Desc
	chanUp  *prometheus.Desc
}

// value is one sample taken from Stats: a counter or gauge, with the value
// of its label if its descriptor has one.
type value struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	label string
	get   func(*tiercache.Stats) float64
}

// NewCollector returns a collector of src's statistics, to be registered on
// a registry the caller owns. See the package documentation for the metrics.
// It panics if src is nil or the options make invalid metric names, which
// the registry would otherwise report at registration.
func NewCollector(src StatsSource, opt Options) prometheus.Collector {
	if src == nil {
		panic("tiercacheprom: NewCollector with a nil StatsSource")
	}
	if opt.Namespace == "" {
		opt.Namespace = "tiercache"
	}
	c := &collector{src: src}
	byName := make(map[string]*prometheus.Desc)
	for _, d := range definitions {
		desc := byName[d.name]
		if desc == nil {
			var labels []string
			if d.label != "" {
				labels = []string{d.label}
			}
			desc = prometheus.NewDesc(prometheus.BuildFQName(opt.Namespace, "", d.name), d.help, labels, opt.ConstLabels)
			byName[d.name] = desc
			c.descs = append(c.descs, desc)
		}
		c.values = append(c.values, value{desc: desc, typ: d.typ, label: d.value, get: d.get})
	}
	newDesc := func(name, help string) *prometheus.Desc {
		desc := prometheus.NewDesc(prometheus.BuildFQName(opt.Namespace, "", name), help, nil, opt.ConstLabels)
		c.descs = append(c.descs, desc)
		return desc
	}
	c.lag = newDesc("invalidation_lag_seconds",
		"Time from an invalidation's publication on another replica to its eviction here.")
	c.redisUp = newDesc("redis_up",
		"1 if Redis is usable, 0 while the circuit breaker is open; absent when the mode uses no Redis.")
	c.chanUp = newDesc("channel_up",
		"1 if the invalidation channel is confirmed, else 0; absent when the mode needs no channel.")
	return c
}

// Describe sends every descriptor the collector can produce.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect takes one snapshot of the source and sends it as metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for _, v := range c.values {
		var labels []string
		if v.label != "" {
			labels = []string{v.label}
		}
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, v.get(&s), labels...)
	}
	count, buckets := lagBuckets(s.LagCounts)
	ch <- prometheus.MustNewConstHistogram(c.lag, count, s.LagSum.Seconds(), buckets)

	st := c.src.State()
	if m, ok := upMetric(c.redisUp, st.Redis); ok {
		ch <- m
	}
	if m, ok := upMetric(c.chanUp, st.Channel); ok {
		ch <- m
	}
}

// lagBuckets turns the per-bucket counts of [tiercache.Stats.LagCounts]
// (one per [tiercache.LagBuckets] bound, then +Inf) into the cumulative
// buckets Prometheus expects, keyed by upper bound in seconds, and the total
// count, which includes the +Inf bucket.
func lagBuckets(counts []uint64) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, len(tiercache.LagBuckets))
	var cum uint64
	for i, bound := range tiercache.LagBuckets {
		if i < len(counts) {
			cum += counts[i]
		}
		buckets[bound.Seconds()] = cum
	}
	for _, n := range counts[min(len(tiercache.LagBuckets), len(counts)):] {
		cum += n
	}
	return cum, buckets
}

// upMetric is 1 for "up" and 0 for "down"; "disabled" (or anything else)
// produces no metric.
func upMetric(desc *prometheus.Desc, state string) (prometheus.Metric, bool) {
	switch state {
	case "up":
		return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 1), true
	case "down":
		return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 0), true
	}
	return nil, false
}
