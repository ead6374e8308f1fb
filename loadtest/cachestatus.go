package loadtest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dunglas/httpsfv"
)

// Tier says which layer answered a cached GET, as read from its Cache-Status
// header.
type Tier int

// The tiers. TierUnknown means the response carried no usable Cache-Status
// (CACHE_MODE=none, an error, or a server that does not cache).
const (
	TierUnknown Tier = iota
	TierL1
	TierL2
	TierOrigin
)

var tierNames = [...]string{"unknown", "l1", "l2", "origin"}

// String returns "l1", "l2", "origin" or "unknown".
func (t Tier) String() string { return tierNames[t] }

// CacheMember is one member of a Cache-Status list: a cache name and its
// parameters (RFC 9211 §2). Parameter values are kept as their textual
// form; a bare parameter ("hit") has the value "?1".
type CacheMember struct {
	Name   string
	Params map[string]string
}

// CacheStatus is a classified Cache-Status header.
type CacheStatus struct {
	Tier      Tier
	Collapsed bool // some member had the "collapsed" parameter
}

// ParseCacheStatus parses an RFC 9211 Cache-Status field value, an RFC 8941
// List whose members are Items (a token or string naming the cache) with
// parameters, with github.com/dunglas/httpsfv. Inner lists are accepted and
// skipped; a member named by anything but a non-empty token or string is an
// error.
func ParseCacheStatus(v string) ([]CacheMember, error) {
	list, err := httpsfv.UnmarshalList([]string{v})
	if err != nil {
		return nil, fmt.Errorf("loadtest: cache-status %q: %w", v, err)
	}
	var out []CacheMember
	for _, m := range list {
		it, ok := m.(httpsfv.Item)
		if !ok {
			continue // an inner list names no cache
		}
		name, ok := cacheName(it.Value)
		if !ok {
			return nil, fmt.Errorf("loadtest: cache-status %q: a member without a cache name", v)
		}
		out = append(out, CacheMember{Name: name, Params: paramsText(it.Params)})
	}
	return out, nil
}

// cacheName returns the name of a Cache-Status member: a token or a
// non-empty string ("" is a valid sf-string but names no cache, found by
// FuzzParseCacheStatus).
func cacheName(v any) (string, bool) {
	switch n := v.(type) {
	case httpsfv.Token:
		return string(n), true
	case string:
		return n, n != ""
	}
	return "", false
}

// paramsText returns a member's parameters with each value in its textual
// form.
func paramsText(p *httpsfv.Params) map[string]string {
	out := make(map[string]string, len(p.Names()))
	for _, k := range p.Names() {
		v, _ := p.Get(k)
		out[k] = bareText(v)
	}
	return out
}

// bareText writes a bare item as CacheMember keeps it: tokens, strings and
// display strings as their text (strings unquoted), booleans as "?1" and
// "?0", numbers in decimal, byte sequences and dates in their RFC 8941 and
// RFC 9651 form.
func bareText(v any) string {
	switch x := v.(type) {
	case httpsfv.Token:
		return string(x)
	case string:
		return x
	case httpsfv.DisplayString:
		return string(x)
	case bool:
		if x {
			return "?1"
		}
		return "?0"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []byte:
		return ":" + base64.StdEncoding.EncodeToString(x) + ":"
	case time.Time:
		return "@" + strconv.FormatInt(x.Unix(), 10)
	}
	return fmt.Sprint(v)
}

// ClassifyCacheStatus says which tier answered. Members are ordered from the
// origin-side cache outward (RFC 9211 §2); the response came from the first
// member with a "hit" parameter, a name ending in "l1" meaning the
// in-process tier and one ending in "l2" the shared one. If no member hit but
// one forwarded ("fwd"), the origin answered.
func ClassifyCacheStatus(members []CacheMember) CacheStatus {
	var cs CacheStatus
	fwd := false
	for _, m := range members {
		if _, ok := m.Params["collapsed"]; ok {
			cs.Collapsed = true
		}
		if _, ok := m.Params["fwd"]; ok {
			fwd = true
		}
		if _, ok := m.Params["hit"]; ok && cs.Tier == TierUnknown {
			cs.Tier = tierOfName(m.Name)
		}
	}
	if cs.Tier == TierUnknown && fwd {
		cs.Tier = TierOrigin
	}
	return cs
}

func tierOfName(name string) Tier {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, "l1"):
		return TierL1
	case strings.HasSuffix(n, "l2"):
		return TierL2
	}
	return TierL2 // some other shared cache in front of the origin
}

// classifyHeader parses and classifies a header value. Malformed values
// classify as TierUnknown.
func classifyHeader(v string) CacheStatus {
	if v == "" {
		return CacheStatus{}
	}
	members, err := ParseCacheStatus(v)
	if err != nil {
		return CacheStatus{}
	}
	return ClassifyCacheStatus(members)
}

// statusMemo remembers the classification of the Cache-Status values one
// run has seen. A server sends a handful of distinct values; parsing one
// with httpsfv costs 0.6-4.9 us and 10-21 allocations, a lookup here
// 13-31 ns and none, on a generator whose whole cost is 39-41 us per GET:
// without the memo, parsing would take up to a tenth of the generator's
// CPU (`go test -run XXX -bench 'CacheStatus|GeneratorGet' -count 3
// ./loadtest/`, side by side in one run on the shared 2-core machine; in
// an earlier such run the hand-written parser httpsfv replaced took
// 0.4-2.6 us where httpsfv took 0.8-10 us). It holds at most statusMemoMax
// values, so a server that varies the header cannot grow it without bound.
// The zero value is ready to use.
type statusMemo struct {
	m sync.Map // string -> CacheStatus
	n atomic.Int64
}

const statusMemoMax = 1024

// classify is classifyHeader, memoised.
func (c *statusMemo) classify(v string) CacheStatus {
	if cs, ok := c.m.Load(v); ok {
		return cs.(CacheStatus)
	}
	cs := classifyHeader(v)
	if len(v) < 256 && c.n.Add(1) <= statusMemoMax {
		c.m.Store(v, cs)
	}
	return cs
}

// KeyTiers counts the keys of a batch read by the tier that answered each,
// indexed by [Tier].
type KeyTiers [4]int64

// ClassifyBatchCacheStatus counts the keys of a batch answer (GET
// /products?ids=) by tier from each member's detail="<hits>/<keys asked>"
// (the README's HTTP API): a member's hits were answered by its tier, and
// the keys the client-side member (the last) was asked that no member hit
// came from the origin. It returns false when no member has a well-formed
// detail, or the hits exceed the keys asked.
func ClassifyBatchCacheStatus(members []CacheMember) (KeyTiers, bool) {
	var kt KeyTiers
	asked, hits := int64(-1), int64(0)
	for _, m := range members {
		d, ok := m.Params["detail"]
		if !ok {
			continue
		}
		h, a, ok := parseDetail(d)
		if !ok {
			return KeyTiers{}, false
		}
		kt[tierOfName(m.Name)] += h
		hits += h
		asked = a // members run from the origin outward: the last was asked every key
	}
	if asked < 0 || hits > asked {
		return KeyTiers{}, false
	}
	kt[TierOrigin] += asked - hits
	return kt, true
}

// parseDetail reads "<hits>/<keys asked>".
func parseDetail(d string) (hits, asked int64, ok bool) {
	hs, as, found := strings.Cut(d, "/")
	h, err1 := strconv.ParseInt(hs, 10, 64)
	a, err2 := strconv.ParseInt(as, 10, 64)
	if !found || err1 != nil || err2 != nil || h < 0 || h > a {
		return 0, 0, false
	}
	return h, a, true
}

// classifyBatchHeader classifies a batch's Cache-Status: the collapsed
// flag, and its keys by tier (false when the header has no usable
// detail). Not memoised: the detail counts make most values distinct.
func classifyBatchHeader(v string) (CacheStatus, KeyTiers, bool) {
	members, err := ParseCacheStatus(v)
	if err != nil || len(members) == 0 {
		return CacheStatus{}, KeyTiers{}, false
	}
	kt, ok := ClassifyBatchCacheStatus(members)
	return ClassifyCacheStatus(members), kt, ok
}
