package products

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/tiercache"
)

// ListGroup is the cache group of every list page: each write retires it.
const ListGroup = "products:list"

// Service reads products through the cache and writes them to the store,
// invalidating after each commit.
type Service struct {
	store  *Store
	cache  *tiercache.Cache[Entry] // nil: no cache (mode none)
	rdb    redis.UniversalClient   // nil when no Redis is used; for readiness
	log    *slog.Logger
	outbox *outbox     // nil unless the cache uses Redis
	schema atomic.Bool // the migrations have been applied
	// draining is set on SIGTERM: /readyz answers 503 from then on.
	draining atomic.Bool
	// staleIfError and softTimeout are the fail-safe defaults
	// (docs/design.md §3.16): see [Service.SetFailSafe].
	staleIfError, softTimeout atomic.Int64 // nanoseconds
}

// NewService returns a Service over store. cache may be nil, meaning every
// read goes to the database; rdb (used only to report Redis health) may be
// nil when the cache uses no Redis. The schema counts as not ready until
// [Service.Migrate] succeeds or [Service.SetSchemaReady] is called.
//
// When the cache uses Redis (tiered or redis mode), NewService turns on the
// store's invalidation outbox: every write records its invalidation in the
// write's transaction, and [Service.RunOutbox] must run to mark and sweep
// the rows. Without Redis there is nothing to deliver late (mode local
// runs as the only replica), and no rows are recorded.
func NewService(store *Store, cache *tiercache.Cache[Entry], rdb redis.UniversalClient, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, cache: cache, rdb: rdb, log: logger}
	if cache != nil && cache.Mode() != tiercache.ModeL1Only {
		store.outbox = true
		s.outbox = newOutbox(store, cache, rdb, logger)
	}
	return s
}

// Store returns the service's store.
func (s *Service) Store() *Store { return s.store }

// Cache returns the service's cache, nil in mode none.
func (s *Service) Cache() *tiercache.Cache[Entry] { return s.cache }

// Mode returns the configuration name of the cache mode: tiered, redis,
// local or none.
func (s *Service) Mode() string {
	if s.cache == nil {
		return "none"
	}
	return s.cache.Mode().String()
}

// Migrate applies the schema migrations and marks the schema ready.
func (s *Service) Migrate(ctx context.Context) error {
	if err := Migrate(ctx, s.store.pool, s.log); err != nil {
		return err
	}
	s.schema.Store(true)
	return nil
}

// MigrateUntilDone retries Migrate with a capped backoff until it succeeds
// or ctx ends, so a replica started before its database comes up without a
// crash loop.
func (s *Service) MigrateUntilDone(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.Migrate(ctx)
		if err == nil {
			return nil
		}
		s.log.Error("products: migrations failed, retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// SetSchemaReady declares the schema migrated by someone else.
func (s *Service) SetSchemaReady() { s.schema.Store(true) }

func (s *Service) ready() error {
	if !s.schema.Load() {
		return ErrUnavailable
	}
	return nil
}

// productKeyPrefix starts the cache key of every product.
const productKeyPrefix = "product:"

// ProductKey is the cache key of product id: "product:<id>".
func ProductKey(id uuid.UUID) string {
	var b [len(productKeyPrefix) + 36]byte
	copy(b[:], productKeyPrefix)
	encodeUUID(b[len(productKeyPrefix):], id)
	return string(b[:])
}

// encodeUUID writes id in its canonical lower-case form into dst[:36],
// as id.String() does but without a string of its own.
func encodeUUID(dst []byte, id uuid.UUID) {
	const hexDigits = "0123456789abcdef"
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
}

func listKey(limit int, after uuid.UUID) string {
	a := ""
	if after != uuid.Nil {
		a = after.String()
	}
	return "list:limit=" + strconv.Itoa(limit) + ":after=" + a
}

// Product returns the entry of product id and its Cache-Status header
// (empty without a cache). It returns ErrNotFound, with a header, for a
// product that does not exist.
func (s *Service) Product(ctx context.Context, id uuid.UUID) (Entry, string, error) {
	if err := s.ready(); err != nil {
		return Entry{}, "", err
	}
	if s.cache == nil {
		return s.read(ctx, "", func(ctx context.Context) (Entry, error) { return s.loadProduct(ctx, id) })
	}
	rd := newProductRead(s)
	encodeUUID(rd.key[len(productKeyPrefix):], id)
	rd.id = id
	e, ans, err := s.readProduct(ctx, rd, nil)
	return e, ans.status, err
}

// answer says how a product read was served: its Cache-Status, and for an
// answer from the fail-safe store (docs/design.md §3.16) its age.
type answer struct {
	status string
	stale  bool
	age    time.Duration
}

// productByText is [Service.Product] of the id as the path spells it
// (see [parseCanonicalUUID]); errMalformedID if it is not a UUID. start is
// when the request arrived (requestStart; zero: unknown), opts the read's
// fail-safe options (failSafeOptions).
func (s *Service) productByText(ctx context.Context, start time.Time, text string, opts []tiercache.GetOption) (Entry, answer, error) {
	rd := newProductRead(s)
	id, err := parseCanonicalUUID(text, rd.key[len(productKeyPrefix):])
	if err != nil {
		rd.recycle()
		return Entry{}, answer{}, err
	}
	if err := s.ready(); err != nil {
		rd.recycle()
		return Entry{}, answer{}, err
	}
	rd.id, rd.start = id, start
	if s.cache == nil {
		defer rd.recycle() // the load runs here and now
		e, status, err := s.read(ctx, "", rd.load)
		return e, answer{status: status}, err
	}
	return s.readProduct(ctx, rd, opts)
}

// readProduct reads the product rd names through the cache, and recycles
// rd when it may.
func (s *Service) readProduct(ctx context.Context, rd *productRead, opts []tiercache.GetOption) (Entry, answer, error) {
	e, info, err := s.lookupAt(ctx, rd.start, rd.cacheKey(), rd.load, opts...)
	if info.Source == tiercache.SourceL1 {
		rd.recycle()
		if err == nil {
			return e, answer{status: statusL1Hit}, nil
		}
	}
	return e, answer{status: s.status(info), stale: info.Stale, age: info.Age}, err
}

// loadProduct reads product id from the store for the cache.
func (s *Service) loadProduct(ctx context.Context, id uuid.UUID) (Entry, error) {
	p, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Entry{}, tiercache.ErrNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	return productEntry(p)
}

// List returns a page of at most limit products after the id after
// (uuid.Nil: the first page), and its Cache-Status header.
func (s *Service) List(ctx context.Context, limit int, after uuid.UUID) (Entry, string, error) {
	if err := s.ready(); err != nil {
		return Entry{}, "", err
	}
	load := func(ctx context.Context) (Entry, error) {
		pg, err := s.store.List(ctx, limit, after)
		if err != nil {
			return Entry{}, err
		}
		return pageEntry(pg)
	}
	return s.read(ctx, listKey(limit, after), load, tiercache.InGroup(ListGroup))
}

func (s *Service) read(ctx context.Context, key string, load tiercache.LoadFunc[Entry], opts ...tiercache.GetOption) (Entry, string, error) {
	if s.cache == nil {
		e, err := load(ctx)
		if errors.Is(err, tiercache.ErrNotFound) {
			err = ErrNotFound
		}
		return e, "", err
	}
	e, info, err := s.lookup(ctx, key, load, opts...)
	return e, s.status(info), err
}

// lookup reads key through the cache, mapping its errors to the service's.
func (s *Service) lookup(ctx context.Context, key string, load tiercache.LoadFunc[Entry], opts ...tiercache.GetOption) (Entry, tiercache.Info, error) {
	return s.lookupAt(ctx, time.Time{}, key, load, opts...)
}

// lookupAt is lookup of a read that began at start (tiercache.Cache.GetAt;
// zero: the cache reads its clock).
func (s *Service) lookupAt(ctx context.Context, start time.Time, key string, load tiercache.LoadFunc[Entry], opts ...tiercache.GetOption) (Entry, tiercache.Info, error) {
	e, info, err := s.cache.GetInfoAt(ctx, start, key, load, opts...)
	switch {
	case errors.Is(err, tiercache.ErrNotFound):
		return Entry{}, info, ErrNotFound
	case errors.Is(err, tiercache.ErrClosed):
		return Entry{}, tiercache.Info{}, ErrUnavailable
	}
	return e, info, err
}

// status is the Cache-Status header of an answer found as info says.
func (s *Service) status(info tiercache.Info) string {
	if info.Source == 0 {
		return ""
	}
	if info.Stale {
		return failSafeStatus(info)
	}
	return cacheStatus(s.cache.Mode(), info)
}

// Create stores a new product and returns its entry. A negative cache entry
// for the new id may exist (someone asked for it before), so it is
// invalidated with the list pages.
func (s *Service) Create(ctx context.Context, in Input) (Entry, uuid.UUID, error) {
	if err := s.ready(); err != nil {
		return Entry{}, uuid.Nil, err
	}
	p, oid, err := s.store.Create(ctx, in)
	if err != nil {
		return Entry{}, uuid.Nil, err
	}
	s.invalidate(ctx, p.ID, oid)
	e, err := productEntry(p)
	return e, p.ID, err
}

// Update replaces product id if cond holds and returns its new entry.
func (s *Service) Update(ctx context.Context, id uuid.UUID, in Input, cond Precondition) (Entry, error) {
	if err := s.ready(); err != nil {
		return Entry{}, err
	}
	p, oid, err := s.store.Update(ctx, id, in, cond)
	if err != nil {
		return Entry{}, err
	}
	s.invalidate(ctx, id, oid)
	return productEntry(p)
}

// Delete removes product id if cond holds.
func (s *Service) Delete(ctx context.Context, id uuid.UUID, cond Precondition) error {
	if err := s.ready(); err != nil {
		return err
	}
	oid, err := s.store.Delete(ctx, id, cond)
	if err != nil {
		return err
	}
	s.invalidate(ctx, id, oid)
	return nil
}

// invalidate runs after a write committed, never before (docs/design.md §3.1): it
// retires every list page and the product's key on every replica. When it
// returns, reads on this replica see the write (§3.2). It runs detached from
// the request's context: a client that hangs up after the commit must not
// leave the old value cached.
//
// The write's outbox row oid (0: none) is marked done, off the request
// path, only when Redis took the delete and the publish. Otherwise it
// stays: this replica's cache retries, the other replicas hear of it
// through PostgreSQL and the first that reaches Redis sends it (§3.15),
// and if all else fails a sweeper re-sends it (docs/design.md §3 rule 14).
func (s *Service) invalidate(ctx context.Context, id uuid.UUID, oid int64) {
	if s.cache == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.cache.InvalidateGroup(ctx, ListGroup, ProductKey(id)); err != nil {
		// ErrDeferred: reads here see the write; the cache retries the
		// Redis part, and the outbox row waits for a sweeper.
		s.log.Warn("products: invalidation deferred", "id", id, "outbox_id", oid, "err", err)
		s.notifyDeferred(ctx, oid, err)
		return
	}
	if oid != 0 {
		s.outbox.done(oid)
	}
}
