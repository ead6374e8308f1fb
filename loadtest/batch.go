package loadtest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// batchAnswer is the part of a GET /products?ids= answer the generator
// reads.
type batchAnswer struct {
	Items   []product `json:"items"`
	Missing []string  `json:"missing"`
	// Stale lists the items served stale from the fail-safe store
	// (stale-if-error), in the order of Items (the README's HTTP API).
	Stale []staleItem `json:"stale"`
}

type staleItem struct {
	ID  string `json:"id"`
	Age int64  `json:"age"`
}

// batchRanks draws the keys of one batch from the key distribution:
// BatchSize distinct ranks (fewer when the key space is smaller, or when a
// very skewed distribution keeps drawing keys already taken).
func (r *runner) batchRanks(v *vu) []int {
	n := min(r.sc.BatchSize, len(r.ids))
	v.ranks = v.ranks[:0]
	for tries := 0; len(v.ranks) < n && tries < 16*n; tries++ {
		if k := r.keys.Next(v.rng); !slices.Contains(v.ranks, k) {
			v.ranks = append(v.ranks, k)
		}
	}
	return v.ranks
}

// doBatch reads a batch of keys in one request. Its keys count in the hit
// ratios one by one, from the Cache-Status detail of each tier; each item
// goes to the consistency probe as a single read's would.
func (r *runner) doBatch(ctx context.Context, v *vu, begin time.Time, x *sample) error {
	ranks := r.batchRanks(v)
	var path strings.Builder
	path.Grow(len("/products?ids=") + 37*len(ranks))
	path.WriteString("/products?ids=")
	for i, k := range ranks {
		if i > 0 {
			path.WriteByte(',')
		}
		path.WriteString(r.ids[k])
	}
	x.keys[TierUnknown] = int64(len(ranks)) // until a Cache-Status says otherwise
	resp, err := r.request(ctx, v, x, http.MethodGet, path.String(), nil)
	if err != nil {
		return err
	}
	if cs, keys, ok := classifyBatchHeader(resp.Header.Get("Cache-Status")); ok {
		x.cache, x.keys = cs, keys
		if keys[TierFailSafe] > 0 {
			x.noteAge(resp)
		}
	}
	if x.status(resp) {
		r.checkBatch(v.buf.Bytes(), ranks, begin, x)
	}
	return nil
}

// checkBatch checks that the answer has every id asked, once, in order,
// in items or missing; probes each item; and files an id of the key space
// answered missing, unless the ledger knows it may be deleted, as a
// failure under 404, as a single read of it would be.
func (r *runner) checkBatch(body []byte, ranks []int, begin time.Time, x *sample) {
	x.checks++
	var b batchAnswer
	if json.Unmarshal(body, &b) != nil {
		return
	}
	i, j, st, lost := 0, 0, 0, false
	now := time.Now()
	for _, k := range ranks {
		id := r.ids[k]
		switch {
		case i < len(b.Items) && b.Items[i].ID == id && b.Items[i].Version > 0:
			labelled := st < len(b.Stale) && b.Stale[st].ID == id
			if labelled {
				st++
			}
			r.reads.answered(k, now)
			if k < r.probeN {
				r.probe.read(id, b.Items[i].Version, begin.Sub(r.start), labelled)
			}
			i++
		case j < len(b.Missing) && b.Missing[j] == id:
			lost = lost || !r.ledger.MayBeGone(id)
			j++
		default:
			return // an id left out, answered twice, out of order or without a version
		}
	}
	switch {
	case i != len(b.Items) || j != len(b.Missing) || st != len(b.Stale):
		return // ids not asked for, or stale ids not among the items in order
	case lost:
		x.failed, x.failCode = true, http.StatusNotFound
		return
	}
	x.checkOK++
}
