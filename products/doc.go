// Package products is the product domain of productsd: the PostgreSQL
// [Store], its embedded schema [Migrate]ions, input validation, the
// [Service] that reads through a [tiercache.Cache] and invalidates after
// every committed write, and the HTTP API built by [NewServer].
//
// # Read path
//
// A product read, GET /products/{id}, asks the cache for the key
// "product:<id>", built only from a parsed UUID. The cached value is an
// [Entry]: the encoded JSON body, its ETag and version, so an L1 hit writes
// the bytes it finds without encoding anything. A product that does not exist
// is cached as such (a negative entry) and invalidated when a product with
// that id is created. List pages are cached under
// "list:limit=<n>:after=<id>" in the group "products:list".
//
// # Write path
//
// Every write runs in one transaction. Only after it commits does the
// service call [tiercache.Cache.InvalidateGroup] for the list group and the
// product's key, and only then does it answer (docs/design.md §3.1, §3.2, §3.10).
// Invalidating before the commit would let a concurrent reader refill the
// cache with the old row. An update bumps the version in the same statement,
// and If-Match is a condition of that statement, not a read before it.
//
// # Durable invalidation
//
// When the cache uses Redis, every write also records its invalidation in
// the cache_outbox table, in the same transaction, so that an acknowledged
// write's invalidation survives its writer (docs/design.md §3 rule 14). A row is
// deleted once Redis took the delete and the publish: by the writer's
// marker, off the request path, or by the sweeper that every replica runs
// in [Service.RunOutbox], which re-sends rows older than
// [OutboxOptions].Grace, one replica per row (FOR UPDATE SKIP LOCKED). So
// a write acknowledged while its writer could not reach Redis reaches every
// replica within Grace + SweepInterval + the invalidation lag of Redis
// being reachable, even if the writer died.
//
// # Cache modes
//
// The service runs with a tiered cache (L1 and Redis), Redis alone, a local
// LRU alone, or no cache (a nil cache): each GET says which tiers answered in
// an RFC 9211 Cache-Status header, omitted when there is no cache.
package products
