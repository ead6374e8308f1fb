// Package tiercache is a typed two-tier read-through cache for many replicas
// of one service: L1 is an in-process LRU in each replica, L2 is Redis, and
// the source of truth (a database) sits behind a [LoadFunc].
//
// # Read path
//
// [Cache.Get] looks in L1 first; a hit costs one LRU lookup and no
// allocation, because L1 holds values ready to use. On a miss, concurrent
// callers in one replica collapse into one fill (singleflight). The fill reads
// Redis; on a Redis miss it takes a lease on the key (SET NX of a random
// token) so that, across all replicas, one loader runs while the others
// re-read Redis briefly. The loader's result goes to Redis only if the lease
// still stands, and to L1 only if no invalidation of the key arrived since
// the fill began.
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
//
// Loaders that return [ErrNotFound] produce a negative entry, cached for
// Options.NegativeTTL and invalidated like any other.
//
// # The staleness bound
//
// Every L1 entry has a maximum age, Options.L1TTL (default 30s, plus at most
// 5ms of clock granularity). Whatever fails (a lost message, a partitioned
// subscriber that has not noticed yet, a bug), no replica serves an L1 value
// older than that. In normal operation a write is visible on the writing
// replica as soon as Invalidate returns and on the others within the
// pub/sub delivery time (milliseconds on a LAN); [Cache.Stats] reports that
// lag as a histogram.
//
// # Redis down
//
// Every Redis call has a short timeout (Options.L2Timeout) and goes through a
// circuit breaker, so reads fall through to the loader, still collapsed, at
// the cost of a failed call only while the breaker is closed. L1 is bypassed
// while the invalidation channel is down, unless Options.Standalone says this
// is the only replica. Everything re-attaches by itself.
package tiercache
