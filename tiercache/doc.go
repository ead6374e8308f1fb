// Package tiercache is a typed two-tier read-through cache for many replicas
// of one service: L1 is an in-process LRU in each replica, L2 is Redis, and
// the source of truth (a database) sits behind a [LoadFunc].
//
// # Read path
//
// [Cache.Get] looks in L1 first; a hit costs one LRU lookup, one reading of
// the monotonic clock (see the staleness bound) and no allocation, because
// L1 holds values ready to use; [Cache.GetAt] takes the reading the caller
// made when its read began (an HTTP request's arrival) instead, and then
// reads no clock. On a miss, concurrent callers in one
// replica collapse into one fill, as with singleflight: the first caller
// reads L2 on its own goroutine, and only a miss there hands the lease wait
// and the load to a goroutine of their own, which every caller waits for
// until its own context ends. The fill reads
// Redis; on a Redis miss it takes a lease on the key (SET NX of a random
// token) so that, across all replicas, one loader runs while the others
// re-read Redis briefly. The loader's result goes to Redis only if the lease
// still stands (a compare-and-set: a Lua script, or a WATCH transaction
// with Options.ScriptFreeMiss), and to L1 only if no invalidation of the
// key arrived since the fill began.
//
// # Invalidation
//
// After a change commits, [Cache.Invalidate] (or [Cache.InvalidateGroup])
// deletes the keys and their leases in Redis, fences and evicts them in this
// replica's L1, and publishes a small message on "<Namespace>:inval". Every
// other replica evicts on receipt. Redis pub/sub delivers at most once, so
// the subscriber reads with Receive and watches its own connection: until
// Redis confirms the subscription, and whenever it breaks, L1 is flushed and
// bypassed; it is flushed once more when the subscription is back. Failed
// deletes and publishes are queued, coalesced by key, and retried.
//
// Groups retire many keys at once: a key read with [InGroup] embeds the
// group's generation, and InvalidateGroup raises the generation everywhere
// in O(1) round trips, so old entries are never read again and age out.
// No clock takes part: a bump is the higher of the writer's generation
// plus one and Redis's plus one, and a counter Redis lost starts again from
// a fresh random seed, never from 0, so it does not repeat a generation
// handed out before. A replica that hears or reads a generation below its
// own takes Redis's (docs/design.md §3.10).
//
// A value read in the last part of its L2 TTL (Options.RefreshAhead) is
// refreshed in the background by one replica, the lease deciding which, so
// a key that stays hot never expires on the request path
// (docs/design.md §3.18).
//
// # Keys and group names
//
// The same in every Redis mode, standalone, Sentinel and Cluster: a key or
// a group name is any string without NUL (a call given one with NUL
// returns [ErrInvalidKey]). The empty string is a valid key; as a group it
// means no group ([InGroup]("") reads ungrouped, and [Cache.InvalidateGroup]
// refuses it with ErrInvalidKey). No two different (key, group) pairs
// share an entry, whatever ':', '#', '{' or '}' their names hold. In a
// Cluster every Redis key of one cache key carries one hash tag built
// from the escaped key, so no key or group name can cause CROSSSLOT; only
// Options.Namespace is restricted, and may not hold '{' or '}'. Multi-key
// calls (GetMany, Invalidate of many keys) need no common slot either: each
// key's commands go to its own slot (docs/design.md §3.12).
//
// Loaders that return [ErrNotFound] produce a negative entry, cached for
// Options.NegativeTTL and invalidated like any other.
//
// # The staleness bound
//
// Two bounds hold, whatever fails.
//
// The freshness lease (docs/design.md §3.13): the subscriber sends PING on its
// subscription connection every Options.FreshnessInterval (5ms) with its
// send time (while reads come; an idle replica pings only for liveness,
// and its first read bypasses L1 until the next answer). Redis answers a subscribed PING in order, after every message
// it delivered to that connection before it, so when the answer is read
// every invalidation published before the send time has been applied. A
// read serves from L1 only if such an answer came for a PING sent within
// Options.StalenessBound (25ms) before the read, measured on the process's
// own monotonic clock, read by the reader itself (a clock kept by another
// goroutine could be starved along with the subscriber) or, with
// [Cache.GetAt], by its caller when the caller's read began; the guarantee
// below then counts from that start. Otherwise the read
// bypasses L1 (without flushing it), reads group generations from Redis,
// and joins no load that began more than StalenessBound before it. So on
// one Redis primary a read that begins more than StalenessBound after a
// write was acknowledged never returns the older value, however late the
// subscriber runs or Redis answers: a slow script, a fork or a stalled
// subscriber costs L1 hits, not correctness. The guarantee covers writes
// whose [Cache.Invalidate] returned nil; one that returned [ErrDeferred]
// reached other replicas only when its retry (or the caller's outbox) gets
// through.
//
// The maximum age: every L1 entry lives at most Options.L1TTL (30s), so
// even a bug cannot keep a value longer.
//
// [Cache.Stats] reports the lag of each message and the freshness age.
//
// # Stale on request
//
// A read with [StaleIfError] (RFC 5861) may, only when its loader fails
// (or, with [SoftTimeout], is slow), get a copy of the key's last value,
// labelled stale in [Info], if that copy's database read began at most
// the allowance ago; a read without it never sees one (docs/design.md
// §3.16). The copies live in a per-replica store apart from L1 and L2
// (Options.FailSafeSize) that invalidations do not touch, and, with
// Options.FailSafeL2TTL, in Redis too: each fill of a value writes a copy
// beside it in the same script or transaction, so that a replica that
// never read a key can answer it from another replica's fill.
//
// # Observability
//
// [Cache.Stats] and [Cache.State] are what package tiercacheprom exports to
// Prometheus. [Options.Tracer] is told of each Get and GetInfo, with the
// [Info] of how it was answered, and, if it is a [ManyTracer], of each
// GetMany and GetManyInfo with the [BatchInfo] of its keys; package tiercacheotel implements it with
// OpenTelemetry spans. A traced fill runs under the context of the read
// that leads it (without its cancellation), so the spans of its Redis
// commands and of the loader are children of that read's. Without a
// Tracer a read pays one nil check. The package itself links neither
// library.
//
// # Redis down
//
// Every Redis call has a short timeout (Options.L2Timeout) and goes through a
// circuit breaker, so reads fall through to the loader, still collapsed, at
// the cost of a failed call only while the breaker is closed. L1 is bypassed
// while the invalidation channel is down, unless Options.Standalone says this
// is the only replica. Everything re-attaches by itself. Invalidations are
// not subject to the breaker: each tries Redis with Options.WriteTimeout
// (5s), long enough to outlast a stall, and returns [ErrDeferred] only when
// Redis does not take it, or (where Redis has replicas) when fewer than
// Options.MinReplicasAck replicas acknowledged the delete within
// Options.ReplicaAckTimeout: then it wraps [ErrNotReplicated], since a
// failover could lose it (docs/design.md §3.15).
//
// # Rules and their tests
//
// Each correctness rule of the design has tests that fail when the rule is
// broken (each checked by breaking the rule in one line):
//
//	rule                                     tests
//	1  invalidate after commit               products: TestInvalidateAfterCommit
//	2  order: L2 delete, L1, publish         TestL2DeleteBeforeL1Evict, TestInvalidationOrder, TestL2ReadRacingWriteIsFenced
//	3  L1 fill fencing, forget loads         TestLoadRacingWriteIsFenced, TestInvalidationForgetsLoadInFlight
//	4  L2 stale-set protection (lease)       TestLoadRacingWriteIsFenced, TestStampede,
//	                                         TestWriteBetweenLeaseCheckAndFillIsFenced, TestWriteBeforeLeaseWatchIsFenced
//	5  no L1 before subscription             TestNoL1BeforeSubscription
//	6  missed messages: flush, gaps          TestLostMessageAfterPubSubKill, TestResubscribeFencesFillsOfTheGap,
//	                                         TestFlushFencesAndForgetsFillInFlight, TestMalformedAndOwnMessages,
//	                                         TestSequencePerIncarnation, TestFailedPublishKeepsSequence,
//	                                         TestConcurrentWritesAreNoGap, TestConcurrentInvalidationsShareAMessage,
//	                                         TestSubscriberForgetsSilentPublishers, TestRedisRestart,
//	                                         TestLostFirstMessageOfIncarnationIsAGap
//	7  maximum age                           TestL1MaxAge
//	8  failed publishes retried              TestFailedPublishIsRetried, TestRetryQueueOverflow,
//	                                         TestFailedDeleteQueuesBeforeLocalStep, TestCloseWaitsForInvalidation,
//	                                         TestInvalidationIgnoresOpenBreaker, TestOutageWarningsAreRateLimited,
//	                                         TestRejectedRetryIsDropped, TestCancelledLeaderDoesNotSpoilItsBatch
//	9  negative results                      TestNegativeCaching
//	10 groups                                TestGroupInvalidation, TestGroupsWithoutChannel, TestChannelUpRefreshesGroups,
//	                                         TestFailedGroupBumpFillsNoTier, TestFailedRefreshDistrustsGroups,
//	                                         TestGroupPagesShortL2TTL, TestGroupNamesDoNotAlias, FuzzGroupedKeys,
//	                                         TestGroupGenerationsSurviveLostCounterAndSkewedClock,
//	                                         TestGroupsTakeLowerGenerations, TestEmptyGroupIsInvalid
//	11 Redis down is not an outage           TestRedisRestart, TestRedisCluster, TestClusterOddKeys, TestClusterOddGroups
//	12 no errors cached, panics, decoding    TestErrorsAreNotCached, TestLoaderPanicIsAnErrorForEveryCaller,
//	                                         TestUndecodableL2ValueIsAMiss, TestCallerContextDoesNotCancelSharedLoad,
//	                                         TestNULIsAnInvalidKey, TestDecodePanicIsAMiss,
//	                                         TestGetManyDecodePanicIsAMiss, TestEncodePanicReturnsLoadedValue,
//	                                         TestGetManyEncodePanicReturnsLoadedValue,
//	                                         TestPanickingLoaderGivesBackHeldConnection
//	13 freshness lease                       TestLapseBypassesL1WithoutFlush, TestNoJoinOfLoadOlderThanBound,
//	                                         TestGetAtFreshnessCountedFromStart,
//	                                         TestRedisStallNoStaleReads, TestIdleReplicaProvesFreshnessOnDemand,
//	                                         TestRandomizedConsistency, TestClusterSubscribesOnMasterWithReadOnly,
//	                                         TestClusterSubscriptionFollowsFailover
//	14 durable invalidation (ErrDeferred)    products: TestWriterDiesWithUnsentInvalidation,
//	                                         TestRedisRestartUnderLoad; cmd/productsd: TestWriterKilledWithUnsentInvalidation
//	15 invalidation survives a failover      TestInvalidationWaitsForReplicas; products: TestReplayAfterMasterChange,
//	   (WAIT, replay window, relay)          TestOutboxPrunesDoneRowsAfterWindow, TestWriterCutOffRelaysThroughPostgres;
//	                                         cmd/productsd: TestSentinelFailoverLosingInvalidation
//	16 stale only on request (StaleIfError)  TestStaleIfErrorServesCopyOnlyWhenAskedAndYoungEnough,
//	                                         TestStaleIfErrorKeepsNotFound, TestSoftTimeoutServesCopyWhileLoadCompletes,
//	                                         TestFailSafeStoreBounded, TestGetManyStaleIfError, TestGetManySoftTimeout,
//	                                         TestStaleIfErrorCopyFromL2, TestGetManyStaleIfErrorCopyFromL2,
//	                                         TestStaleIfErrorCopyFromL2ClockSkew, TestStaleIfErrorCopyInRedis
//	17 batch reads keep per-key rules        TestGetManyMixed, TestGetManyRacingWriteIsFenced, TestGetManySharesLoadWithGet,
//	                                         TestGetManyThreeReplicas, TestGetManyLoadsItsLeasesWhileWaiting,
//	                                         TestGetManyLoaderFails, TestGetManyL2OneRoundTrip,
//	                                         TestGetManyNoJoinOfLoadOlderThanBound, TestGetManyCluster
//	18 eager refresh                         TestEagerRefreshOneLoaderAcrossReplicas, TestEagerRefreshRacingWriteIsFenced,
//	                                         TestEagerRefreshFromL1Hit, TestCloseCancelsRefresh, TestNoRefreshWhenOff
//	                                         TestEagerRefreshAtWindowEdge, TestEagerRefreshRetriedWhenSlotsWereFull
package tiercache
