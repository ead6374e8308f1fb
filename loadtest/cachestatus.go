package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Tier says which layer answered a cached GET, as read from its Cache-Status
// header.
type Tier int

// The tiers. TierUnknown means the response carried no usable Cache-Status
// (CACHE_MODE=none, an error, or a server that does not cache).
// TierFailSafe is a labelled stale answer (RFC 5861 stale-if-error): the
// database failed and the read had opted in, so the server answered with a
// copy and said so (a member named "...failsafe", or a hit with a negative
// ttl, RFC 9211 §2.4). It is its own class, never counted as a cache hit.
const (
	TierUnknown Tier = iota
	TierL1
	TierL2
	TierOrigin
	TierFailSafe
	numTiers
)

var tierNames = [numTiers]string{"unknown", "l1", "l2", "origin", "failsafe"}

// String returns "l1", "l2", "origin", "failsafe" or "unknown".
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
// parameters. Inner lists are accepted and skipped.
func ParseCacheStatus(v string) ([]CacheMember, error) {
	p := sfParser{s: v}
	var out []CacheMember
	p.ows()
	if p.done() {
		return nil, nil
	}
	for {
		m, err := p.member()
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, *m)
		}
		p.ows()
		if p.done() {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("loadtest: cache-status: expected ',' at %d in %q", p.i, v)
		}
		p.i++
		p.ows()
		if p.done() {
			return nil, fmt.Errorf("loadtest: cache-status: trailing comma in %q", v)
		}
	}
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
			cs.Tier = tierOfMember(m)
		}
	}
	if cs.Tier == TierUnknown && fwd {
		cs.Tier = TierOrigin
	}
	return cs
}

// tierOfMember is the tier of a member that answered: a hit with a
// negative ttl was stale (RFC 9211 §2.4), which only a labelled fail-safe
// answer may be.
func tierOfMember(m CacheMember) Tier {
	if strings.HasPrefix(m.Params["ttl"], "-") {
		return TierFailSafe
	}
	return tierOfName(m.Name)
}

func tierOfName(name string) Tier {
	n := strings.ToLower(name)
	switch {
	case strings.HasSuffix(n, "failsafe"):
		return TierFailSafe
	case strings.HasSuffix(n, "l1"):
		return TierL1
	case strings.HasSuffix(n, "l2"):
		return TierL2
	}
	return TierL2 // some other shared cache in front of the origin
}

// cacheStatusMemo remembers classifications of header values: a server sends
// only a handful of distinct values, so parsing each once keeps the
// generator's CPU for sending requests. It holds at most memoMax values, so
// a server that varies the header cannot grow it without bound.
var (
	cacheStatusMemo sync.Map // string -> CacheStatus
	memoSize        atomic.Int64
)

const memoMax = 1024

// classifyHeader parses and classifies a header value, memoised. Malformed
// values classify as TierUnknown.
func classifyHeader(v string) CacheStatus {
	if v == "" {
		return CacheStatus{}
	}
	if cs, ok := cacheStatusMemo.Load(v); ok {
		return cs.(CacheStatus)
	}
	var cs CacheStatus
	if members, err := ParseCacheStatus(v); err == nil {
		cs = ClassifyCacheStatus(members)
	}
	if len(v) < 256 && memoSize.Add(1) <= memoMax {
		cacheStatusMemo.Store(v, cs)
	}
	return cs
}

// KeyTiers counts the keys of a batch read by the tier that answered each,
// indexed by [Tier].
type KeyTiers [numTiers]int64

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
		kt[tierOfMember(m)] += h
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

// sfParser is a small RFC 8941 parser for Lists of Items with parameters.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) sp() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

// member parses an Item or an Inner List (returned as nil) with parameters.
func (p *sfParser) member() (*CacheMember, error) {
	if p.s[p.i] == '(' {
		p.i++
		for {
			p.sp()
			if p.done() {
				return nil, fmt.Errorf("loadtest: cache-status: unterminated inner list")
			}
			if p.s[p.i] == ')' {
				p.i++
				_, err := p.params()
				return nil, err
			}
			if _, err := p.bareItem(); err != nil {
				return nil, err
			}
			if _, err := p.params(); err != nil {
				return nil, err
			}
		}
	}
	name, err := p.bareItem()
	if err != nil {
		return nil, err
	}
	if name == "" { // "" is a valid sf-string but names no cache (found by FuzzParseCacheStatus)
		return nil, fmt.Errorf("loadtest: cache-status: a member without a cache name at %d", p.i)
	}
	params, err := p.params()
	if err != nil {
		return nil, err
	}
	return &CacheMember{Name: name, Params: params}, nil
}

func (p *sfParser) params() (map[string]string, error) {
	params := map[string]string{}
	for p.i < len(p.s) && p.s[p.i] == ';' {
		p.i++
		p.sp()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		val := "?1"
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
			if val, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		params[key] = val
	}
	return params, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if p.done() || !(isLower(p.s[p.i]) || p.s[p.i] == '*') {
		return "", fmt.Errorf("loadtest: cache-status: bad key at %d in %q", p.i, p.s)
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(isLower(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// bareItem parses a token, string, number, boolean or byte sequence and
// returns its text (strings unquoted).
func (p *sfParser) bareItem() (string, error) {
	if p.done() {
		return "", fmt.Errorf("loadtest: cache-status: missing item in %q", p.s)
	}
	start := p.i
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case c == '?':
		p.i++
		if p.done() || (p.s[p.i] != '0' && p.s[p.i] != '1') {
			return "", fmt.Errorf("loadtest: cache-status: bad boolean in %q", p.s)
		}
		p.i++
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return "", fmt.Errorf("loadtest: cache-status: unterminated byte sequence in %q", p.s)
		}
		p.i += end + 2
	case c == '-' || isDigit(c):
		p.i++
		for p.i < len(p.s) && (isDigit(p.s[p.i]) || p.s[p.i] == '.') {
			p.i++
		}
	case isAlpha(c) || c == '*':
		for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
			p.i++
		}
	default:
		return "", fmt.Errorf("loadtest: cache-status: unexpected %q at %d in %q", c, p.i, p.s)
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) str() (string, error) {
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; c {
		case '\\':
			p.i++
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return "", fmt.Errorf("loadtest: cache-status: bad escape in %q", p.s)
			}
			b.WriteByte(p.s[p.i])
		case '"':
			p.i++
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("loadtest: cache-status: unterminated string in %q", p.s)
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return isLower(c) || (c >= 'A' && c <= 'Z') }

// isTokenChar reports tchar, ":" and "/" (RFC 8941 sf-token).
func isTokenChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~:/", c) >= 0
}
