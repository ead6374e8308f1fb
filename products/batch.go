package products

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/tiercache"
)

// MaxBatch is the largest number of ids GET /products?ids= accepts.
const MaxBatch = 100

// GetMany returns the products among ids that exist, in one query.
func (s *Store) GetMany(ctx context.Context, ids []uuid.UUID) ([]Product, error) {
	ps, err := retryRead(ctx, s, func(q querier) ([]Product, error) {
		s.count(opGet)
		rows, err := q.Query(ctx, "SELECT "+columns+" FROM products WHERE id = ANY($1)", ids)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Product, error) { return scanProduct(r) })
	})
	if err != nil {
		return nil, dbError("get", err)
	}
	return ps, nil
}

// Batch is the answer of [Service.Products]: the entries found, in the
// order asked, the ids not found, and the items served stale from the
// fail-safe store (in the order of Items).
type Batch struct {
	Items   []Entry
	Missing []uuid.UUID
	Stale   []StaleItem
}

// StaleItem is an item of a batch answered from the fail-safe store
// (docs/design.md §3.16): its id, its age, and why the database was not
// used (tiercache.StaleError or StaleTimeout).
type StaleItem struct {
	ID     uuid.UUID
	Age    time.Duration
	Reason string
}

// Products reads the products ids (no duplicates) through the cache in one
// batch (docs/design.md §3.17): one database query for all the misses. It
// returns the batch and its Cache-Status header. opts are the read's
// fail-safe options (failSafeOptions): with them, a key whose load fails is
// answered from its fail-safe copy if one is young enough, listed in
// Batch.Stale; without, any such key fails the batch.
func (s *Service) Products(ctx context.Context, ids []uuid.UUID, opts ...tiercache.GetOption) (Batch, string, error) {
	if err := s.ready(); err != nil {
		return Batch{}, "", err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = ProductKey(id)
	}
	load := func(ctx context.Context, want []string) (map[string]Entry, error) {
		byKey := make(map[string]uuid.UUID, len(keys))
		for i, k := range keys {
			byKey[k] = ids[i]
		}
		wantIDs := make([]uuid.UUID, len(want))
		for i, k := range want {
			wantIDs[i] = byKey[k]
		}
		return s.loadProducts(ctx, wantIDs)
	}
	if s.cache == nil {
		found, err := load(ctx, keys)
		b := Batch{Items: make([]Entry, 0, len(keys))}
		for i, k := range keys {
			if e, ok := found[k]; ok {
				b.Items = append(b.Items, e)
			} else {
				b.Missing = append(b.Missing, ids[i])
			}
		}
		return b, "", err
	}
	items, err := s.cache.GetManyInfo(ctx, keys, load, opts...)
	if errors.Is(err, tiercache.ErrClosed) {
		return Batch{}, "", ErrUnavailable
	}
	if err != nil {
		return Batch{}, "", err
	}
	b := Batch{Items: make([]Entry, 0, len(keys))}
	for i, k := range keys {
		switch it := items[k]; {
		case it.Err == nil:
			b.Items = append(b.Items, it.Val)
			if it.Info.Stale {
				b.Stale = append(b.Stale, StaleItem{ID: ids[i], Age: it.Info.Age, Reason: it.Info.StaleReason})
			}
		case errors.Is(it.Err, tiercache.ErrNotFound):
			b.Missing = append(b.Missing, ids[i])
		default:
			return Batch{}, "", it.Err
		}
	}
	return b, batchStatus(s.cache.Mode(), items), nil
}

// loadProducts reads ids from the store for the cache, keyed by cache key.
func (s *Service) loadProducts(ctx context.Context, ids []uuid.UUID) (map[string]Entry, error) {
	ps, err := s.store.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Entry, len(ps))
	for _, p := range ps {
		e, err := productEntry(p)
		if err != nil {
			return nil, err
		}
		out[ProductKey(p.ID)] = e
	}
	return out, nil
}

// batchStatus is the Cache-Status of a batch (docs/design.md §4): a member
// per tier the batch asked, L2 first; "hit" when every key asked of that
// tier was there, else "fwd=miss"; detail="<hits>/<keys asked>" counts the
// keys; "stored" when at least one was stored, "collapsed" when at least
// one waited on another load. Keys answered from the fail-safe store come
// first, in a member of their own: "productsd-failsafe; hit; ttl=-<age of
// the oldest>; detail="<n>/<n>"" (they count as misses of L2 and L1).
func batchStatus(mode tiercache.Mode, items map[string]tiercache.Item[Entry]) string {
	var l1, l2 tierCount
	var stale int
	var oldest time.Duration
	for _, it := range items {
		in := it.Info
		if in.Stale {
			stale++
			oldest = max(oldest, in.Age)
		}
		l1.asked++
		if in.Source == tiercache.SourceL1 {
			l1.hits++
			continue
		}
		l1.stored = l1.stored || in.L1Stored
		l1.collapsed = l1.collapsed || in.Collapsed
		l2.asked++
		if in.Source == tiercache.SourceL2 {
			l2.hits++
		}
		l2.stored = l2.stored || in.L2Stored
		l2.collapsed = l2.collapsed || in.LeaseWaited
	}
	var parts []string
	if stale > 0 {
		n := strconv.Itoa(stale)
		parts = append(parts, statusFailSafe+"; hit; ttl=-"+strconv.FormatInt(ageSeconds(oldest), 10)+`; detail="`+n+"/"+n+`"`)
	}
	if (mode == tiercache.ModeTiered || mode == tiercache.ModeL2Only) && l2.asked > 0 {
		parts = append(parts, l2.member(statusL2))
	}
	if mode == tiercache.ModeTiered || mode == tiercache.ModeL1Only {
		parts = append(parts, l1.member(statusL1))
	}
	return strings.Join(parts, ", ")
}

type tierCount struct {
	asked, hits       int
	stored, collapsed bool
}

func (t tierCount) member(name string) string {
	m := name
	if t.hits == t.asked {
		m += "; hit"
	} else {
		m += "; fwd=miss"
	}
	if t.stored {
		m += "; stored"
	}
	if t.collapsed {
		m += "; collapsed"
	}
	return m + `; detail="` + strconv.Itoa(t.hits) + "/" + strconv.Itoa(t.asked) + `"`
}

// batchIDs parses ids=<id>,<id>,...: 1 to MaxBatch UUIDs, duplicates
// dropped (the first kept), the error naming a malformed id.
func batchIDs(list string) ([]uuid.UUID, error) {
	parts := strings.Split(list, ",")
	if len(parts) > MaxBatch {
		return nil, errors.New("too many ids: " + strconv.Itoa(len(parts)) + ", at most " + strconv.Itoa(MaxBatch))
	}
	ids := make([]uuid.UUID, 0, len(parts))
	seen := make(map[uuid.UUID]bool, len(parts))
	var key [36]byte
	for _, p := range parts {
		id, err := parseCanonicalUUID(p, key[:])
		if err != nil {
			return nil, errors.New("malformed id " + strconv.Quote(p) + ", want a UUID")
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// serveBatch answers GET /products?ids=...: {"items":[...],"missing":[...]}.
func serveBatch(w http.ResponseWriter, r *http.Request, svc *Service, list string) error {
	ids, err := batchIDs(list)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error(), nil)
		return nil
	}
	b, status, err := svc.Products(r.Context(), ids, svc.failSafeOptions(svc.staleAllowance(r))...)
	setCacheStatus(w, status)
	if err != nil {
		return err
	}
	if len(b.Stale) > 0 {
		w.Header()["Age"] = []string{strconv.FormatInt(ageSeconds(oldestStale(b.Stale)), 10)}
	}
	body := make([]byte, 0, 256*len(b.Items)+40*len(b.Missing))
	body = append(body, `{"items":[`...)
	for i, e := range b.Items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, e.Body...)
	}
	body = append(body, `],"missing":[`...)
	for i, id := range b.Missing {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, '"')
		body = append(body, id.String()...)
		body = append(body, '"')
	}
	body = append(body, ']')
	body = appendStale(body, b.Stale)
	body = append(body, '}')
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(body)
	return nil
}

// appendStale writes the batch's "stale" member, when it has stale items:
// ,"stale":[{"id":"<id>","age":<seconds>,"reason":"db-error"},...] in the
// order of items, age rounded up as in the Age header, reason "db-error"
// or "db-timeout" as in the Cache-Status detail of a single read.
func appendStale(body []byte, stale []StaleItem) []byte {
	if len(stale) == 0 {
		return body
	}
	body = append(body, `,"stale":[`...)
	for i, st := range stale {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"id":"`...)
		body = append(body, st.ID.String()...)
		body = append(body, `","age":`...)
		body = strconv.AppendInt(body, ageSeconds(st.Age), 10)
		body = append(body, `,"reason":"`...)
		body = append(body, staleDetail(st.Reason)...)
		body = append(body, `"}`...)
	}
	return append(body, ']')
}

// oldestStale is the largest age among stale.
func oldestStale(stale []StaleItem) time.Duration {
	var oldest time.Duration
	for _, st := range stale {
		oldest = max(oldest, st.Age)
	}
	return oldest
}
