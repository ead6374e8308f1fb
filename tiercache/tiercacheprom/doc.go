// Package tiercacheprom exports the statistics of a [tiercache.Cache] as
// Prometheus metrics. It is kept out of package tiercache so that the cache
// itself does not depend on client_golang.
//
// [NewCollector] returns a [prometheus.Collector] that reads
// [tiercache.Cache.Stats] and [tiercache.Cache.State] at every scrape and
// turns them into constant metrics; it holds no counters of its own. Register
// it on a registry the caller owns (never the global default):
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(tiercacheprom.NewCollector(cache, tiercacheprom.Options{
//		ConstLabels: prometheus.Labels{"cache": "products"},
//	}))
//
// With the default Namespace "tiercache" the metrics are:
//
//	tiercache_hits_total{tier="l1"|"l2"}            Gets answered by the tier
//	tiercache_misses_total{tier="l1"|"l2"}          lookups that missed the tier
//	tiercache_fenced_fills_total{tier="l1"|"l2"}    fills refused because an invalidation raced them
//	tiercache_l2_errors_total                       Redis calls that failed or the breaker refused
//	tiercache_l2_fills_total                        values written to Redis
//	tiercache_loads_total                           loader calls
//	tiercache_load_errors_total                     loader calls that failed
//	tiercache_refreshes_total                       loader calls of eager refreshes
//	tiercache_collapsed_total                       callers that shared another caller's load
//	tiercache_lease_waits_total                     fills that waited on another replica's lease
//	tiercache_leases_taken_total                    leases this replica took
//	tiercache_lease_timeouts_total                  lease waits that gave up
//	tiercache_decode_errors_total                   L2 values the codec could not decode
//	tiercache_encode_errors_total                   values the codec could not encode
//	tiercache_breaker_opens_total                   times the Redis circuit breaker opened
//	tiercache_invalidations_total                   Invalidate and InvalidateGroup calls
//	tiercache_published_total                       invalidation messages sent
//	tiercache_publish_failures_total                sends that failed and were queued for retry
//	tiercache_received_total                        well-formed messages received, own included
//	tiercache_applied_total                         messages from other replicas applied
//	tiercache_own_skipped_total                     own messages ignored
//	tiercache_malformed_total                       messages dropped as malformed
//	tiercache_gaps_total                            sequence gaps detected
//	tiercache_flushes_total                         L1 flushes
//	tiercache_subscribes_total                      confirmed subscriptions
//	tiercache_subscription_breaks_total             confirmed subscriptions that broke
//	tiercache_topology_resubscribes_total           Cluster subscriptions moved to the slot's new master
//	tiercache_retries_total                         invalidation retry rounds attempted
//	tiercache_retry_succeeded_total                 retry rounds that went through
//	tiercache_retry_dropped_total                   keys dropped because the retry queue was full
//	tiercache_not_replicated_total                  invalidations too few Redis replicas acknowledged (WAIT)
//	tiercache_subscribed                            1 while L1 may be used, else 0
//	tiercache_retry_queue                           keys and groups waiting for a retry
//	tiercache_l1_entries                            entries in L1
//	tiercache_l1_max_age_seconds                    the staleness bound of L1 (Options.L1TTL)
//	tiercache_invalidation_lag_seconds              histogram: publish to eviction on this replica
//	tiercache_invalidation_lag_max_seconds          the worst lag observed
//	tiercache_stale_served_total{reason="error"|"timeout"}  fail-safe answers (docs/design.md §3.16)
//	tiercache_stale_served_age_seconds_total        total age of the fail-safe answers
//	tiercache_stale_served_age_max_seconds          the oldest fail-safe answer
//	tiercache_failsafe_entries                      copies in the fail-safe store
//	tiercache_failsafe_l2_reads_total               fail-safe copies read from Redis after a failed load
//	tiercache_redis_up                              1 if Redis is usable, 0 while the breaker is open
//	tiercache_channel_up                            1 if the invalidation channel is confirmed, else 0
//
// tiercache_redis_up and tiercache_channel_up are left out when the cache's
// mode does not use Redis or a channel, so that an L1-only replica does not
// look like one whose Redis is down.
//
// tiercache_l1_max_age_seconds is the staleness bound of docs/design.md §3.7: no
// replica serves an L1 value older than it, whatever fails.
package tiercacheprom
