package tiercache

import (
	"sync/atomic"
	"time"
)

// LagBuckets are the upper bounds of the invalidation lag histogram.
var LagBuckets = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// stats is the cache's counters, all atomic.
type stats struct {
	l2Hits, l2Misses, l2Errors, l2Fills                                  atomic.Uint64
	loads, loadErrors, collapsed, leaseWaits, leasesTaken                atomic.Uint64
	leaseTimeouts, fencedFills, fencedL2Fills                            atomic.Uint64
	decodeErrors, encodeErrors, breakerOpens                             atomic.Uint64
	invalidations, published, publishFailures, received, applied         atomic.Uint64
	ownSkipped, malformed, gaps, flushes, subscribes                     atomic.Uint64
	subscriptionBreaks, retries, retrySucceeded, retryDropped            atomic.Uint64
	bypassStale, bypassDown, bypassWaking, lapses, pings                 atomic.Uint64
	notReplicated, refreshes, topologyResubscribes, invalidationsDropped atomic.Uint64
	staleError, staleTimeout, staleCopiesRead                            atomic.Uint64
	staleAgeSum, staleAgeMax                                             atomic.Int64
	lag                                                                  histogram
}

func (s *stats) init() { s.lag.counts = make([]atomic.Uint64, len(LagBuckets)+1) }

// histogram is a fixed-bucket histogram of durations.
type histogram struct {
	counts []atomic.Uint64 // one per LagBuckets bound, then +Inf
	sum    atomic.Int64    // nanoseconds
	max    atomic.Int64    // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	for i < len(LagBuckets) && d > LagBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Stats is a snapshot of a cache's counters since it was created.
type Stats struct {
	L1Hits        uint64 // answered from L1
	L1Misses      uint64 // looked in L1 and missed (not counted while L1 is bypassed)
	L2Hits        uint64 // answered from Redis
	L2Misses      uint64 // looked in Redis and missed
	L2Errors      uint64 // Redis calls that failed or were refused by the breaker
	L2Fills       uint64 // values written to Redis
	Loads         uint64 // loader calls
	Refreshes     uint64 // loader calls of eager refreshes (counted in Loads too)
	LoadErrors    uint64 // loader calls that failed (never cached)
	Collapsed     uint64 // callers that waited on another caller's load in this replica
	LeaseWaits    uint64 // fills that waited on another replica's lease
	LeasesTaken   uint64 // leases this replica took
	LeaseTimeouts uint64 // lease waits that gave up and loaded anyway
	FencedFills   uint64 // L1 installs refused because an invalidation raced the load
	FencedL2Fills uint64 // L2 fills refused because the lease was gone
	DecodeErrors  uint64 // L2 values the codec could not decode (an error or a panic)
	EncodeErrors  uint64 // values the codec could not encode (an error or a panic)
	BreakerOpens  uint64 // times the Redis circuit breaker opened

	Invalidations      uint64 // Invalidate and InvalidateGroup calls
	Published          uint64 // invalidation messages sent
	PublishFailures    uint64 // sends that failed (and were queued for retry)
	Received           uint64 // well-formed messages received, own included
	Applied            uint64 // messages from other replicas applied
	OwnSkipped         uint64 // own messages ignored
	Malformed          uint64 // messages dropped as malformed
	Gaps               uint64 // sequence gaps detected (each flushes L1)
	Flushes            uint64 // L1 flushes
	Subscribes         uint64 // confirmed subscriptions
	SubscriptionBreaks uint64 // confirmed subscriptions that broke
	// TopologyResubscribes counts sharded subscriptions ended because their
	// node no longer was the master of the channel's slot (§3.13).
	TopologyResubscribes uint64
	Subscribed           bool   // the channel is confirmed now (or not needed)
	Retries              uint64 // retry rounds attempted
	RetrySucceeded       uint64 // retry rounds that went through
	RetryDropped         uint64 // keys dropped because the retry queue was full
	RetryQueued          int64  // keys and groups waiting for a retry now
	// InvalidationsDropped counts queued keys and groups dropped because
	// Redis rejects them for good (CROSSSLOT, WRONGTYPE, a key the ACL
	// denies, a malformed command): retrying cannot help, and they must not
	// hold back the entries queued beside them (docs/design.md §3.8).
	InvalidationsDropped uint64
	NotReplicated        uint64 // invalidations (and retries) the master took but too few replicas acknowledged (§3.15)

	L1BypassStale   uint64        // reads that bypassed L1 because this replica was not caught up (§3.13)
	L1BypassDown    uint64        // reads that bypassed L1 because the channel was down or not yet confirmed
	L1BypassWaking  uint64        // reads that bypassed L1 while an idle replica caught up after its first read in a while
	FreshnessPings  uint64        // PINGs sent on the subscription to prove freshness
	FreshnessLapses uint64        // times the replica fell more than StalenessBound behind
	FreshnessAge    time.Duration // now minus the send time of the newest answered freshness ping (0 without a channel)
	StalenessBound  time.Duration // Options.StalenessBound
	L1Len           int           // entries in L1 now
	L1MaxAge        time.Duration // the longest any L1 entry lives (Options.L1TTL)

	StaleServedError   uint64        // fail-safe answers after a loader failure (§3.16)
	StaleServedTimeout uint64        // fail-safe answers after the soft timeout (§3.16)
	StaleAgeSum        time.Duration // total age of the fail-safe answers
	StaleAgeMax        time.Duration // oldest fail-safe answer
	FailSafeLen        int           // copies in the fail-safe store now
	FailSafeL2Reads    uint64        // copies read from Redis (Options.FailSafeL2TTL) after a failed load (§3.16)

	LagCounts []uint64      // invalidation lag histogram, per LagBuckets bound then +Inf
	LagSum    time.Duration // total lag observed
	LagMax    time.Duration // worst lag observed
}

// Stats returns a snapshot of the counters.
func (c *Cache[V]) Stats() Stats {
	s := &c.stats
	out := Stats{
		L2Hits:   s.l2Hits.Load(),
		L2Misses: s.l2Misses.Load(), L2Errors: s.l2Errors.Load(), L2Fills: s.l2Fills.Load(),
		Loads: s.loads.Load(), Refreshes: s.refreshes.Load(), LoadErrors: s.loadErrors.Load(), Collapsed: s.collapsed.Load(),
		LeaseWaits: s.leaseWaits.Load(), LeasesTaken: s.leasesTaken.Load(), LeaseTimeouts: s.leaseTimeouts.Load(),
		FencedFills: s.fencedFills.Load(), FencedL2Fills: s.fencedL2Fills.Load(),
		DecodeErrors: s.decodeErrors.Load(), EncodeErrors: s.encodeErrors.Load(), BreakerOpens: s.breakerOpens.Load(),
		Invalidations: s.invalidations.Load(), Published: s.published.Load(), PublishFailures: s.publishFailures.Load(),
		Received: s.received.Load(), Applied: s.applied.Load(), OwnSkipped: s.ownSkipped.Load(),
		Malformed: s.malformed.Load(), Gaps: s.gaps.Load(), Flushes: s.flushes.Load(),
		Subscribes: s.subscribes.Load(), SubscriptionBreaks: s.subscriptionBreaks.Load(),
		TopologyResubscribes: s.topologyResubscribes.Load(),
		Subscribed:           c.Ready(), Retries: s.retries.Load(), RetrySucceeded: s.retrySucceeded.Load(),
		RetryDropped: s.retryDropped.Load(), RetryQueued: c.retry.size.Load(),
		NotReplicated: s.notReplicated.Load(), InvalidationsDropped: s.invalidationsDropped.Load(),
		L1BypassStale: s.bypassStale.Load(), L1BypassDown: s.bypassDown.Load(), L1BypassWaking: s.bypassWaking.Load(),
		FreshnessPings: s.pings.Load(), FreshnessLapses: s.lapses.Load(),
		StalenessBound: c.opt.StalenessBound, L1Len: c.Len(), L1MaxAge: c.opt.L1TTL,
		StaleServedError: s.staleError.Load(), StaleServedTimeout: s.staleTimeout.Load(),
		StaleAgeSum: time.Duration(s.staleAgeSum.Load()), StaleAgeMax: time.Duration(s.staleAgeMax.Load()),
		FailSafeLen: c.failSafe.len(), FailSafeL2Reads: s.staleCopiesRead.Load(),
		LagSum: time.Duration(s.lag.sum.Load()), LagMax: time.Duration(s.lag.max.Load()),
	}
	if c.l1 != nil {
		out.L1Hits, out.L1Misses = c.l1.counts()
	}
	if c.bus != nil {
		out.FreshnessAge = time.Duration(c.clockNow() - c.bus.freshAt.Load())
	}
	out.LagCounts = make([]uint64, len(s.lag.counts))
	for i := range s.lag.counts {
		out.LagCounts[i] = s.lag.counts[i].Load()
	}
	return out
}

// State is the health of a cache's dependencies, for readiness probes.
type State struct {
	Redis   string // "up", "down" (breaker open) or "disabled"
	Channel string // "up", "down" or "disabled"
}

// State reports the health of Redis and of the invalidation channel.
func (c *Cache[V]) State() State {
	st := State{Redis: "disabled", Channel: "disabled"}
	if c.l2 != nil {
		st.Redis = "up"
		if c.l2.br.open() {
			st.Redis = "down"
		}
	}
	if c.bus != nil {
		st.Channel = "down"
		if c.bus.up.Load() {
			st.Channel = "up"
		}
	}
	return st
}
