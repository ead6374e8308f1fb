package products

import (
	"context"
	"sync"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/tiercache/productcache/tiercache"
)

// productRead is what one read of a product hands the cache: its key and
// its loader. Building both per request costs an L1 hit two allocations
// (the key string and the closure over the id), so they live in a recycled
// productRead instead: the loader is bound once, when the productRead is
// made, and the key is written into a buffer it owns.
//
// Recycling is safe only because [tiercache.Cache.GetInfo] keeps neither
// the key nor the loader of a read that L1 answered (Info.Source ==
// SourceL1): it looks the key up and returns. Any other read may have
// handed both to a fill that outlives it (a load shared with other
// callers, an L1 entry keyed by the string), so its productRead is never
// reused, and the key's bytes, never written again, stay a valid string
// for as long as anything holds it.
type productRead struct {
	svc   *Service
	id    uuid.UUID
	start time.Time // when the request arrived, see requestStart
	key   [len(productKeyPrefix) + 36]byte
	load  tiercache.LoadFunc[Entry]
}

var productReads = sync.Pool{New: func() any {
	rd := &productRead{}
	copy(rd.key[:], productKeyPrefix)
	rd.load = func(ctx context.Context) (Entry, error) { return rd.svc.loadProduct(ctx, rd.id) }
	return rd
}}

// newProductRead returns a productRead for s from the pool; the caller
// writes the id into rd.id and its text into rd.key.
func newProductRead(s *Service) *productRead {
	rd := productReads.Get().(*productRead)
	rd.svc = s
	return rd
}

// cacheKey is ProductKey(rd.id), backed by rd's buffer: valid as long as
// rd is not recycled, and forever if it never is.
func (rd *productRead) cacheKey() string {
	return unsafe.String(&rd.key[0], len(rd.key))
}

// recycle returns rd to the pool. Call it only after L1 answered the read.
func (rd *productRead) recycle() {
	rd.svc, rd.id, rd.start = nil, uuid.Nil, time.Time{}
	productReads.Put(rd)
}
