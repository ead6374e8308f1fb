// Package loadtest is a k6-style load generator for the products API of
// docs/design.md §4, written as a library so that the cmd/loadtest binary, the make
// targets and the end-to-end tests share one engine.
//
// # Model
//
// A [Scenario] names the targets (one base URL per replica, chosen per
// request like a load balancer would), an executor, a key distribution, a
// request mix and thresholds. [Run] executes it:
//
//   - setup: make sure N products exist (through the API, or by running
//     `productsd seed`) and collect their ids by paging GET /products;
//   - the executor: constant-vus and ramping-vus are closed models (each
//     virtual user sends one request per iteration, back to back);
//     constant-arrival-rate is an open model: iterations are scheduled on a
//     fixed timeline and latency is measured from the scheduled start, so a
//     slow server cannot hide its slowness by slowing the generator down
//     (no coordinated omission); iterations that find no free VU are counted
//     as dropped;
//   - metrics: HdrHistogram latency per request type, per-tier hit ratios from
//     the RFC 9211 Cache-Status header ([ParseCacheStatus]), failures, checks,
//     and database queries as deltas of each target's /metrics;
//   - the consistency probe ([Probe]): every acknowledged write to a sampled
//     id and every read of one (each item of a batch read too) is logged; after the run each read that began
//     more than a grace window after an acknowledgement and returned an
//     older version is a stale read;
//   - thresholds ([ParseThreshold]) in k6 syntax, evaluated on the [Summary].
//
// The [Summary] is printed as text ([Summary.WriteText]), JSON and a
// self-contained HTML report ([WriteHTML]). Every run also checks its
// acknowledged writes ([Ledger]): each written id is read back through
// every target (and from the database, given [RunOptions].Stored),
// and lost_writes==0 is a threshold of every run. Failures are counted by
// status code and by transport error ([ClassifyError]).
//
// This package only sends load, and speaks only HTTP: what the targets do
// not answer over HTTP comes through [CPUMeter] and [StoredVersions],
// which package loadtest/meter implements on Redis and PostgreSQL.
// Package loadtest/cluster starts and stops
// productsd processes, a private redis-server and throwaway databases;
// package compare runs one scenario against several cache configurations
// and a static ceiling; package chaos injects faults phase by phase.
//
// # The JSON summary
//
// Latencies are in milliseconds, ratios in [0,1], rates per second.
//
//	scenario, executor, targets, start, duration_s, vus_max, key_space
//	interrupted          the run was cancelled (Ctrl-C) before its end
//	iterations, dropped_iterations   (dropped: arrivals with no free VU)
//	http_reqs, http_reqs_per_s, http_req_failures
//	http_req_failed      share of requests with an unexpected status or a transport error
//	http_req_duration    {count, avg, min, med, p90, p95, p99, p99_9, max}, all types
//	checks               {passes, fails, rate}: status as expected; reads carry a version
//	types.<get|list|create|update|delete|batch>
//	                     {requests, failed, latency{...}, cache{...} for get, list and batch}
//	cache                {l1, l2, origin, classified, unknown}: which tier answered
//	                     the reads, from Cache-Status (unknown: no header, e.g. CACHE_MODE=none);
//	                     a batch counts each of its keys, from each tier's detail="<hits>/<keys>"
//	collapsed            reads whose Cache-Status says they waited on another's load
//	                     (a batch counts once)
//	tier_latency.<l1|l2|origin|unknown>
//	                     GET /products/{id} latency {...} by the tier that answered
//	db_queries           {available, total, per_request, per_s, by_op, by_target}:
//	                     deltas of productsd_db_queries_total on every target
//	consistency          {enabled, sampled_ids, grace_ms, writes, reads,
//	                     reads_after_write, stale_reads, stale_within_grace,
//	                     max_staleness_ms, staleness{...}, staleness_buckets[{le_ms, count}],
//	                     consistent_ratio}
//	status_codes         {"200": n, ...}: every response by status
//	failures             {by_status, by_cause, by_target}: the failed requests by
//	                     unexpected status, by transport error (refused, reset,
//	                     closed, timeout, other) and by target
//	lost_writes          {enabled, ids, acknowledged_writes, reads, database, lost,
//	                     missing, backwards, reappeared, unverified, settle_ms, late,
//	                     examples[{id, where, acked_version, acked_delete, ack_ms, seen}]}
//	thresholds           [{threshold, actual, ok}], thresholds_ok
//	series               per-second points: {t, vus, requests, rps, errors, dropped,
//	                     p50_ms, p95_ms, p99_ms, l1_ratio, l2_ratio, origin_ratio,
//	                     l1_hits, l2_hits}
package loadtest
