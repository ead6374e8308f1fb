package tiercacheprom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/tiercache/productcache/tiercache"
)

// fakeSource is a StatsSource that returns fixed values.
type fakeSource struct {
	stats tiercache.Stats
	state tiercache.State
}

func (f *fakeSource) Stats() tiercache.Stats { return f.stats }
func (f *fakeSource) State() tiercache.State { return f.state }

// sample names one exported sample: a metric name and the value of its
// tier or reason label, if any.
type sample struct{ name, tier string }

// exported says where each field of tiercache.Stats shows up. A field added
// to Stats fails TestEveryStatsFieldIsExported until it is listed here (and
// exported by the collector).
var exported = map[string]sample{
	"L1Hits": {"tiercache_hits_total", "l1"}, "L2Hits": {"tiercache_hits_total", "l2"},
	"L1Misses": {"tiercache_misses_total", "l1"}, "L2Misses": {"tiercache_misses_total", "l2"},
	"FencedFills": {"tiercache_fenced_fills_total", "l1"}, "FencedL2Fills": {"tiercache_fenced_fills_total", "l2"},
	"L2Errors": {"tiercache_l2_errors_total", ""}, "L2Fills": {"tiercache_l2_fills_total", ""},
	"Loads": {"tiercache_loads_total", ""}, "LoadErrors": {"tiercache_load_errors_total", ""},
	"Refreshes": {"tiercache_refreshes_total", ""},
	"Collapsed": {"tiercache_collapsed_total", ""}, "LeaseWaits": {"tiercache_lease_waits_total", ""},
	"LeasesTaken": {"tiercache_leases_taken_total", ""}, "LeaseTimeouts": {"tiercache_lease_timeouts_total", ""},
	"DecodeErrors": {"tiercache_decode_errors_total", ""}, "EncodeErrors": {"tiercache_encode_errors_total", ""},
	"BreakerOpens": {"tiercache_breaker_opens_total", ""}, "Invalidations": {"tiercache_invalidations_total", ""},
	"Published": {"tiercache_published_total", ""}, "PublishFailures": {"tiercache_publish_failures_total", ""},
	"Received": {"tiercache_received_total", ""}, "Applied": {"tiercache_applied_total", ""},
	"OwnSkipped": {"tiercache_own_skipped_total", ""}, "Malformed": {"tiercache_malformed_total", ""},
	"Gaps": {"tiercache_gaps_total", ""}, "Flushes": {"tiercache_flushes_total", ""},
	"Subscribes": {"tiercache_subscribes_total", ""}, "SubscriptionBreaks": {"tiercache_subscription_breaks_total", ""},
	"Subscribed": {"tiercache_subscribed", ""}, "Retries": {"tiercache_retries_total", ""},
	"RetrySucceeded": {"tiercache_retry_succeeded_total", ""}, "RetryDropped": {"tiercache_retry_dropped_total", ""},
	"NotReplicated":        {"tiercache_not_replicated_total", ""},
	"TopologyResubscribes": {"tiercache_topology_resubscribes_total", ""},
	"InvalidationsDropped": {"tiercache_invalidations_dropped_total", "rejected"},
	"RetryQueued":          {"tiercache_retry_queue", ""}, "L1Len": {"tiercache_l1_entries", ""},
	"L1MaxAge": {"tiercache_l1_max_age_seconds", ""}, "LagMax": {"tiercache_invalidation_lag_max_seconds", ""},
	"L1BypassStale": {"tiercache_l1_bypasses_total", "stale"}, "L1BypassDown": {"tiercache_l1_bypasses_total", "channel_down"},
	"L1BypassWaking": {"tiercache_l1_bypasses_total", "waking"}, "FreshnessPings": {"tiercache_freshness_pings_total", ""},
	"FreshnessLapses": {"tiercache_freshness_lapses_total", ""}, "FreshnessAge": {"tiercache_freshness_age_seconds", ""},
	"StalenessBound":   {"tiercache_staleness_bound_seconds", ""},
	"StaleServedError": {"tiercache_stale_served_total", "error"}, "StaleServedTimeout": {"tiercache_stale_served_total", "timeout"},
	"StaleAgeSum": {"tiercache_stale_served_age_seconds_total", ""}, "StaleAgeMax": {"tiercache_stale_served_age_max_seconds", ""},
	"FailSafeLen": {"tiercache_failsafe_entries", ""}, "FailSafeL2Reads": {"tiercache_failsafe_l2_reads_total", ""},
	// LagCounts and LagSum make the histogram.
	"LagCounts": {"tiercache_invalidation_lag_seconds", ""}, "LagSum": {"tiercache_invalidation_lag_seconds", ""},
}

// distinctStats fills every scalar field of a Stats with a value of its own
// (field i gets i+1, in seconds for durations; bools are true), so a
// collector that reads the wrong field is caught.
func distinctStats(t *testing.T) (tiercache.Stats, map[string]float64) {
	t.Helper()
	var s tiercache.Stats
	want := make(map[string]float64)
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		n := i + 1
		switch {
		case f.Type() == reflect.TypeFor[time.Duration]():
			f.SetInt(int64(time.Duration(n) * time.Second))
		case f.Kind() == reflect.Uint64:
			f.SetUint(uint64(n))
		case f.Kind() == reflect.Int64, f.Kind() == reflect.Int:
			f.SetInt(int64(n))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
			n = 1
		case f.Kind() == reflect.Slice:
			continue // LagCounts, checked by the histogram tests
		default:
			t.Fatalf("Stats.%s has type %s, which this test does not know how to fill", name, f.Type())
		}
		want[name] = float64(n)
	}
	return s, want
}

func TestEveryStatsFieldIsExported(t *testing.T) {
	st, want := distinctStats(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(&fakeSource{stats: st}, Options{}))
	families := gather(t, reg)

	var fields []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[tiercache.Stats]()) {
		fields = append(fields, f.Name)
		if _, ok := exported[f.Name]; !ok {
			t.Errorf("tiercache.Stats.%s is not exported as a metric (add it to definitions and to this test's map)", f.Name)
		}
	}
	for name := range exported {
		if !slices.Contains(fields, name) {
			t.Errorf("the test maps Stats.%s, which no longer exists", name)
		}
	}
	for field, w := range want {
		s := exported[field]
		if s.name == "tiercache_invalidation_lag_seconds" {
			continue
		}
		if got := sampleValue(t, families, s.name, s.tier); got != w {
			t.Errorf("%s{tier=%q} (Stats.%s): got %v, want %v", s.name, s.tier, field, got, w)
		}
	}
	if h := histogram(t, families, "tiercache_invalidation_lag_seconds"); h.GetSampleSum() != want["LagSum"] {
		t.Errorf("histogram sum: got %v, want %v (Stats.LagSum)", h.GetSampleSum(), want["LagSum"])
	}
}

func TestLagHistogramIsCumulative(t *testing.T) {
	n := len(tiercache.LagBuckets)
	tests := []struct {
		name      string
		counts    []uint64
		wantCum   []uint64 // per LagBuckets bound
		wantCount uint64
	}{
		{"empty", nil, make([]uint64, n), 0},
		{"all zero", make([]uint64, n+1), make([]uint64, n), 0},
		{
			"spread",
			[]uint64{1, 0, 2, 0, 0, 3, 0, 0, 0, 0, 0, 1, 4},
			[]uint64{1, 1, 3, 3, 3, 6, 6, 6, 6, 6, 6, 7},
			11, // the 4 above the last bound count too
		},
		{"only +Inf", append(make([]uint64, n), 5), make([]uint64, n), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.wantCum) != n {
				t.Fatalf("test table assumes %d lag buckets, tiercache has %d", len(tt.wantCum), n)
			}
			count, buckets := lagBuckets(tt.counts)
			if count != tt.wantCount {
				t.Errorf("count: got %d, want %d", count, tt.wantCount)
			}
			for i, bound := range tiercache.LagBuckets {
				if got := buckets[bound.Seconds()]; got != tt.wantCum[i] {
					t.Errorf("bucket le=%v: got %d, want %d", bound.Seconds(), got, tt.wantCum[i])
				}
			}
			if len(buckets) != n {
				t.Errorf("got %d buckets, want %d", len(buckets), n)
			}
		})
	}
}

func TestLagHistogramExposition(t *testing.T) {
	counts := make([]uint64, len(tiercache.LagBuckets)+1)
	counts[0], counts[3], counts[len(counts)-1] = 2, 1, 1 // 2 under 100µs, 1 under 1ms, 1 over 1s
	src := &fakeSource{stats: tiercache.Stats{LagCounts: counts, LagSum: 1500 * time.Millisecond}}
	c := NewCollector(src, Options{ConstLabels: prometheus.Labels{"replica": "r1"}})
	want := `
# HELP tiercache_invalidation_lag_seconds Time from an invalidation's publication on another replica to its eviction here.
# TYPE tiercache_invalidation_lag_seconds histogram
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.0001"} 2
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.00025"} 2
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.0005"} 2
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.001"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.0025"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.005"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.01"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.025"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.05"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.1"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="0.25"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="1"} 3
tiercache_invalidation_lag_seconds_bucket{replica="r1",le="+Inf"} 4
tiercache_invalidation_lag_seconds_sum{replica="r1"} 1.5
tiercache_invalidation_lag_seconds_count{replica="r1"} 4
`
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	var got strings.Builder
	if _, err := expfmt.MetricFamilyToText(&got, gather(t, reg)["tiercache_invalidation_lag_seconds"]); err != nil {
		t.Fatal(err)
	}
	if got.String() != strings.TrimPrefix(want, "\n") {
		t.Errorf("exposition:\ngot:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestStateGauges(t *testing.T) {
	tests := []struct {
		state          tiercache.State
		redis, channel float64 // -1: absent
	}{
		{tiercache.State{Redis: "up", Channel: "up"}, 1, 1},
		{tiercache.State{Redis: "up", Channel: "down"}, 1, 0},
		{tiercache.State{Redis: "down", Channel: "down"}, 0, 0},
		{tiercache.State{Redis: "up", Channel: "disabled"}, 1, -1},
		{tiercache.State{Redis: "disabled", Channel: "disabled"}, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.state.Redis+"/"+tt.state.Channel, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(NewCollector(&fakeSource{state: tt.state}, Options{}))
			families := gather(t, reg)
			for name, want := range map[string]float64{"tiercache_redis_up": tt.redis, "tiercache_channel_up": tt.channel} {
				_, present := families[name]
				switch {
				case want < 0 && present:
					t.Errorf("%s: present, want absent", name)
				case want >= 0 && !present:
					t.Errorf("%s: absent, want %v", name, want)
				case want >= 0:
					if got := sampleValue(t, families, name, ""); got != want {
						t.Errorf("%s: got %v, want %v", name, got, want)
					}
				}
			}
		})
	}
}

func TestMetricNamesPassLint(t *testing.T) {
	counts := make([]uint64, len(tiercache.LagBuckets)+1)
	src := &fakeSource{stats: tiercache.Stats{LagCounts: counts}, state: tiercache.State{Redis: "up", Channel: "up"}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src, Options{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestNamespaceAndConstLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	opt := Options{Namespace: "products_cache", ConstLabels: prometheus.Labels{"replica": "api2"}}
	reg.MustRegister(NewCollector(&fakeSource{stats: tiercache.Stats{L1Hits: 7}}, opt))
	// A second cache in the same process registers beside the first when
	// its labels differ.
	reg.MustRegister(NewCollector(&fakeSource{}, Options{Namespace: "products_cache", ConstLabels: prometheus.Labels{"replica": "other"}}))
	families := gather(t, reg)
	for name, mf := range families {
		if !strings.HasPrefix(name, "products_cache_") {
			t.Errorf("metric %s does not start with the namespace", name)
		}
		if got := len(mf.GetMetric()); name == "products_cache_hits_total" && got != 4 {
			t.Errorf("%s: got %d series, want 4 (2 tiers x 2 caches)", name, got)
		}
	}
	for _, m := range families["products_cache_hits_total"].GetMetric() {
		if labels(m)["replica"] == "api2" && labels(m)["tier"] == "l1" && m.GetCounter().GetValue() != 7 {
			t.Errorf("products_cache_hits_total{replica=api2,tier=l1}: got %v, want 7", m.GetCounter().GetValue())
		}
	}
}

func TestNewCollectorNilSourcePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewCollector(nil) did not panic")
		}
	}()
	NewCollector(nil, Options{})
}

// TestL1OnlyCache runs a real cache without Redis, so it runs under -short.
func TestL1OnlyCache(t *testing.T) {
	cache, err := tiercache.New[string](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only, L1TTL: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	loads := 0
	load := func(context.Context) (string, error) { loads++; return "v", nil }
	for range 3 {
		if _, err := cache.Get(context.Background(), "k", load); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}
	if _, err := cache.Get(context.Background(), "missing", func(context.Context) (string, error) {
		return "", tiercache.ErrNotFound
	}); !errors.Is(err, tiercache.ErrNotFound) {
		t.Fatalf("Get(missing): got %v, want ErrNotFound", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cache, Options{}))
	families := gather(t, reg)
	checkValues(t, families, map[sample]float64{
		{"tiercache_hits_total", "l1"}:       2,
		{"tiercache_misses_total", "l1"}:     2,
		{"tiercache_hits_total", "l2"}:       0,
		{"tiercache_misses_total", "l2"}:     0,
		{"tiercache_loads_total", ""}:        2,
		{"tiercache_l1_entries", ""}:         2, // the value and the negative entry
		{"tiercache_subscribed", ""}:         1,
		{"tiercache_l1_max_age_seconds", ""}: 45,
		{"tiercache_published_total", ""}:    0,
	})
	if loads != 1 {
		t.Errorf("loader calls: got %d, want 1", loads)
	}
	for _, name := range []string{"tiercache_redis_up", "tiercache_channel_up"} {
		if _, ok := families[name]; ok {
			t.Errorf("%s is exported for an L1-only cache, want it absent", name)
		}
	}
	if h := histogram(t, families, "tiercache_invalidation_lag_seconds"); h.GetSampleCount() != 0 {
		t.Errorf("lag histogram count: got %d, want 0", h.GetSampleCount())
	}
}

func checkValues(t *testing.T, families map[string]*dto.MetricFamily, want map[sample]float64) {
	t.Helper()
	keys := make([]sample, 0, len(want))
	for s := range want {
		keys = append(keys, s)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, s := range keys {
		if got := sampleValue(t, families, s.name, s.tier); got != want[s] {
			t.Errorf("%s{tier=%q}: got %v, want %v", s.name, s.tier, got, want[s])
		}
	}
}

// gather collects reg, failing the test on an inconsistent collector.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// sampleValue returns the value of the counter or gauge name with the given tier
// label ("" for none), failing the test if there is not exactly one.
func sampleValue(t *testing.T, families map[string]*dto.MetricFamily, name, tier string) float64 {
	t.Helper()
	mf, ok := families[name]
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
	found := math.NaN()
	n := 0
	for _, m := range mf.GetMetric() {
		if l := labels(m); l["tier"]+l["reason"] != tier {
			continue
		}
		n++
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			found = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			found = m.GetGauge().GetValue()
		default:
			t.Fatalf("metric %s has type %s, want counter or gauge", name, mf.GetType())
		}
	}
	if n != 1 {
		t.Fatalf("metric %s{tier=%q}: got %d series, want 1", name, tier, n)
	}
	return found
}

func histogram(t *testing.T, families map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	mf, ok := families[name]
	if !ok || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 {
		t.Fatalf("metric %s: want exactly one histogram series, got %v", name, mf)
	}
	return mf.GetMetric()[0].GetHistogram()
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string)
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
