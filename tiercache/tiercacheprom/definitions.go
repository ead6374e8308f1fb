package tiercacheprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/productcache/tiercache"
)

// definition is one sample taken from [tiercache.Stats]. Definitions that
// share a name share a descriptor and differ in the value of their one
// label (tier or reason).
type definition struct {
	name, help   string
	typ          prometheus.ValueType
	label, value string // "" for a metric without a label
	get          func(*tiercache.Stats) float64
}

func counter(name, help string, get func(*tiercache.Stats) uint64) definition {
	return labelledCounter(name, help, "", "", get)
}

func tierCounter(name, help, tier string, get func(*tiercache.Stats) uint64) definition {
	return labelledCounter(name, help, "tier", tier, get)
}

func reasonCounter(name, help, reason string, get func(*tiercache.Stats) uint64) definition {
	return labelledCounter(name, help, "reason", reason, get)
}

func labelledCounter(name, help, label, value string, get func(*tiercache.Stats) uint64) definition {
	return definition{name: name, help: help, typ: prometheus.CounterValue, label: label, value: value,
		get: func(s *tiercache.Stats) float64 { return float64(get(s)) }}
}

func gauge(name, help string, get func(*tiercache.Stats) float64) definition {
	return definition{name: name, help: help, typ: prometheus.GaugeValue, get: get}
}

// bypassHelp is the help of tiercache_l1_bypasses_total, one series per
// reason.
const bypassHelp = "Reads that bypassed L1: the replica was more than the staleness bound behind the invalidation stream (stale), an idle replica was catching up after its first read in a while (waking), or the channel was down or not yet confirmed (channel_down)."

// staleHelp is the help of tiercache_stale_served_total, one series per
// reason.
const staleHelp = "Reads that opted in to stale-if-error answered from the fail-safe store (docs/design.md §3.16): the loader failed (error) or was slower than the soft timeout (timeout)."

// definitions covers every field of tiercache.Stats except the lag
// histogram's counts and sum, which Collect turns into a histogram.
var definitions = []definition{
	tierCounter("hits_total", "Gets answered by the tier.", "l1",
		func(s *tiercache.Stats) uint64 { return s.L1Hits }),
	tierCounter("hits_total", "Gets answered by the tier.", "l2",
		func(s *tiercache.Stats) uint64 { return s.L2Hits }),
	tierCounter("misses_total", "Lookups that missed the tier (L1 is not counted while bypassed).", "l1",
		func(s *tiercache.Stats) uint64 { return s.L1Misses }),
	tierCounter("misses_total", "Lookups that missed the tier (L1 is not counted while bypassed).", "l2",
		func(s *tiercache.Stats) uint64 { return s.L2Misses }),
	tierCounter("fenced_fills_total", "Fills refused: an invalidation raced the load (l1) or the lease was gone (l2).", "l1",
		func(s *tiercache.Stats) uint64 { return s.FencedFills }),
	tierCounter("fenced_fills_total", "Fills refused: an invalidation raced the load (l1) or the lease was gone (l2).", "l2",
		func(s *tiercache.Stats) uint64 { return s.FencedL2Fills }),
	counter("l2_errors_total", "Redis calls that failed or were refused by the circuit breaker.",
		func(s *tiercache.Stats) uint64 { return s.L2Errors }),
	counter("l2_fills_total", "Values written to Redis.",
		func(s *tiercache.Stats) uint64 { return s.L2Fills }),
	counter("loads_total", "Loader calls.",
		func(s *tiercache.Stats) uint64 { return s.Loads }),
	counter("load_errors_total", "Loader calls that failed (never cached).",
		func(s *tiercache.Stats) uint64 { return s.LoadErrors }),
	counter("refreshes_total", "Loader calls of eager refreshes (also in loads_total).",
		func(s *tiercache.Stats) uint64 { return s.Refreshes }),
	counter("collapsed_total", "Callers that waited on another caller's load in this replica.",
		func(s *tiercache.Stats) uint64 { return s.Collapsed }),
	counter("lease_waits_total", "Fills that waited on another replica's lease.",
		func(s *tiercache.Stats) uint64 { return s.LeaseWaits }),
	counter("leases_taken_total", "Leases this replica took.",
		func(s *tiercache.Stats) uint64 { return s.LeasesTaken }),
	counter("lease_timeouts_total", "Lease waits that gave up and loaded anyway.",
		func(s *tiercache.Stats) uint64 { return s.LeaseTimeouts }),
	counter("decode_errors_total", "L2 values the codec could not decode.",
		func(s *tiercache.Stats) uint64 { return s.DecodeErrors }),
	counter("encode_errors_total", "Values the codec could not encode.",
		func(s *tiercache.Stats) uint64 { return s.EncodeErrors }),
	counter("breaker_opens_total", "Times the Redis circuit breaker opened.",
		func(s *tiercache.Stats) uint64 { return s.BreakerOpens }),
	counter("invalidations_total", "Invalidate and InvalidateGroup calls.",
		func(s *tiercache.Stats) uint64 { return s.Invalidations }),
	counter("published_total", "Invalidation messages sent.",
		func(s *tiercache.Stats) uint64 { return s.Published }),
	counter("publish_failures_total", "Invalidation sends that failed and were queued for retry.",
		func(s *tiercache.Stats) uint64 { return s.PublishFailures }),
	counter("received_total", "Well-formed invalidation messages received, own included.",
		func(s *tiercache.Stats) uint64 { return s.Received }),
	counter("applied_total", "Invalidation messages from other replicas applied.",
		func(s *tiercache.Stats) uint64 { return s.Applied }),
	counter("own_skipped_total", "Own invalidation messages ignored.",
		func(s *tiercache.Stats) uint64 { return s.OwnSkipped }),
	counter("malformed_total", "Invalidation messages dropped as malformed.",
		func(s *tiercache.Stats) uint64 { return s.Malformed }),
	counter("gaps_total", "Sequence gaps detected in invalidation messages (each flushes L1).",
		func(s *tiercache.Stats) uint64 { return s.Gaps }),
	counter("flushes_total", "L1 flushes.",
		func(s *tiercache.Stats) uint64 { return s.Flushes }),
	counter("subscribes_total", "Confirmed subscriptions to the invalidation channel.",
		func(s *tiercache.Stats) uint64 { return s.Subscribes }),
	counter("subscription_breaks_total", "Confirmed subscriptions that broke.",
		func(s *tiercache.Stats) uint64 { return s.SubscriptionBreaks }),
	counter("topology_resubscribes_total", "Cluster subscriptions moved because their node no longer was the master of the channel's slot.",
		func(s *tiercache.Stats) uint64 { return s.TopologyResubscribes }),
	counter("retries_total", "Invalidation retry rounds attempted.",
		func(s *tiercache.Stats) uint64 { return s.Retries }),
	counter("retry_succeeded_total", "Invalidation retry rounds that went through.",
		func(s *tiercache.Stats) uint64 { return s.RetrySucceeded }),
	counter("not_replicated_total", "Invalidations the Redis master took but too few replicas acknowledged (WAIT), deferred to the retry.",
		func(s *tiercache.Stats) uint64 { return s.NotReplicated }),
	counter("retry_dropped_total", "Keys dropped because the invalidation retry queue was full.",
		func(s *tiercache.Stats) uint64 { return s.RetryDropped }),
	reasonCounter("invalidations_dropped_total", "Queued invalidation keys and groups dropped because Redis rejects them for good (CROSSSLOT, WRONGTYPE, a key the ACL denies, a malformed command).", "rejected",
		func(s *tiercache.Stats) uint64 { return s.InvalidationsDropped }),
	gauge("subscribed", "1 while the invalidation channel is confirmed or not needed (L1 may be used), else 0.",
		func(s *tiercache.Stats) float64 { return boolValue(s.Subscribed) }),
	gauge("retry_queue", "Keys and groups waiting for an invalidation retry.",
		func(s *tiercache.Stats) float64 { return float64(s.RetryQueued) }),
	gauge("l1_entries", "Entries in L1.",
		func(s *tiercache.Stats) float64 { return float64(s.L1Len) }),
	gauge("l1_max_age_seconds", "The staleness bound: no L1 entry is served when older than this.",
		func(s *tiercache.Stats) float64 { return s.L1MaxAge.Seconds() }),
	gauge("invalidation_lag_max_seconds", "The worst invalidation lag observed.",
		func(s *tiercache.Stats) float64 { return s.LagMax.Seconds() }),
	reasonCounter("l1_bypasses_total", bypassHelp, "stale",
		func(s *tiercache.Stats) uint64 { return s.L1BypassStale }),
	reasonCounter("l1_bypasses_total", bypassHelp, "channel_down",
		func(s *tiercache.Stats) uint64 { return s.L1BypassDown }),
	reasonCounter("l1_bypasses_total", bypassHelp, "waking",
		func(s *tiercache.Stats) uint64 { return s.L1BypassWaking }),
	counter("freshness_pings_total", "PINGs sent on the subscription to prove this replica is caught up (every 5ms while reads come, rarely while idle).",
		func(s *tiercache.Stats) uint64 { return s.FreshnessPings }),
	counter("freshness_lapses_total", "Times this replica fell more than the staleness bound behind the invalidation stream.",
		func(s *tiercache.Stats) uint64 { return s.FreshnessLapses }),
	gauge("freshness_age_seconds", "How far behind the invalidation stream this replica provably is: now minus the send time of the newest answered subscription PING (0 without a channel).",
		func(s *tiercache.Stats) float64 { return s.FreshnessAge.Seconds() }),
	reasonCounter("stale_served_total", staleHelp, "error",
		func(s *tiercache.Stats) uint64 { return s.StaleServedError }),
	reasonCounter("stale_served_total", staleHelp, "timeout",
		func(s *tiercache.Stats) uint64 { return s.StaleServedTimeout }),
	{name: "stale_served_age_seconds_total", help: "Total age of the fail-safe answers; divided by stale_served_total, their mean age.", typ: prometheus.CounterValue,
		get: func(s *tiercache.Stats) float64 { return s.StaleAgeSum.Seconds() }},
	gauge("stale_served_age_max_seconds", "The oldest fail-safe answer served.",
		func(s *tiercache.Stats) float64 { return s.StaleAgeMax.Seconds() }),
	gauge("failsafe_entries", "Copies in the fail-safe store.",
		func(s *tiercache.Stats) float64 { return float64(s.FailSafeLen) }),
	counter("failsafe_l2_reads_total", "Fail-safe copies read from Redis after a failed load, for keys without a local copy young enough.",
		func(s *tiercache.Stats) uint64 { return s.FailSafeL2Reads }),
	gauge("staleness_bound_seconds", "While freshness_age_seconds exceeds this, L1 is bypassed.",
		func(s *tiercache.Stats) float64 { return s.StalenessBound.Seconds() }),
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
