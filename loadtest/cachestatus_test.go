package loadtest

import (
	"reflect"
	"testing"
	"time"
)

func TestClassifyCacheStatus(t *testing.T) {
	tests := []struct {
		header    string
		tier      Tier
		collapsed bool
	}{
		{"productsd-l1; hit", TierL1, false},
		{"productsd-l2; hit, productsd-l1; fwd=miss; stored", TierL2, false},
		{"productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored", TierOrigin, false},
		{"productsd-l2; fwd=miss; stored; collapsed, productsd-l1; fwd=miss; collapsed", TierOrigin, true},
		{"productsd-l2; hit; collapsed, productsd-l1; fwd=miss", TierL2, true},
		{"productsd-l2; hit", TierL2, false},                  // CACHE_MODE=redis
		{"productsd-l2; fwd=miss; stored", TierOrigin, false}, // redis mode, database read
		{"productsd-l1; fwd=miss; stored", TierOrigin, false}, // local mode
		{"productsd-l1;hit", TierL1, false},
		{`"productsd-l1"; hit; ttl=30; key="product:1"`, TierL1, false},
		{"ProductsD-L1; hit", TierL1, false},
		{"", TierUnknown, false},
		{"productsd-l1; fwd=uri-miss, (a b); x", TierOrigin, false},
		{"productsd-l1; hit,", TierUnknown, false},    // malformed: trailing comma
		{"productsd-l1; HIT", TierUnknown, false},     // malformed: keys are lower case
		{"productsd-l1; ttl=\"x", TierUnknown, false}, // unterminated string
		{`""; hit`, TierUnknown, false},               // malformed: a cache needs a name
		// A labelled stale answer (stale-if-error) is its own class, not an L2 hit.
		{`productsd-failsafe; hit; ttl=-3; detail="db-error"`, TierFailSafe, false},
		{`productsd-failsafe; hit; ttl=-1; detail="db-timeout"`, TierFailSafe, false},
		{"other-cache; hit; ttl=-5", TierFailSafe, false}, // stale by its negative ttl (RFC 9211 §2.4)
		{"other-cache; hit; ttl=5", TierL2, false},
		{"productsd-failsafe; fwd=miss", TierOrigin, false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			got := classifyHeader(tt.header)
			if got.Tier != tt.tier || got.Collapsed != tt.collapsed {
				t.Errorf("classify(%q) = %v collapsed=%v, want %v collapsed=%v", tt.header, got.Tier, got.Collapsed, tt.tier, tt.collapsed)
			}
		})
	}
}

func TestParseCacheStatusMembers(t *testing.T) {
	got, err := ParseCacheStatus(`productsd-l2; fwd=miss; stored, productsd-l1; hit; ttl=-5; detail="a \"b\""`)
	if err != nil {
		t.Fatal(err)
	}
	want := []CacheMember{
		{Name: "productsd-l2", Params: map[string]string{"fwd": "miss", "stored": "?1"}},
		{Name: "productsd-l1", Params: map[string]string{"hit": "?1", "ttl": "-5", "detail": `a "b"`}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestClassifyBatchFailSafe(t *testing.T) {
	members, err := ParseCacheStatus(`productsd-failsafe; hit; ttl=-4; detail="2/2", productsd-l2; fwd=miss; detail="3/5", productsd-l1; fwd=miss; detail="1/6"`)
	if err != nil {
		t.Fatal(err)
	}
	kt, ok := ClassifyBatchCacheStatus(members)
	want := KeyTiers{TierL1: 1, TierL2: 3, TierFailSafe: 2}
	if !ok || kt != want {
		t.Fatalf("got %v %v, want %v", kt, ok, want)
	}
	if r := ratiosOf(kt); r.FailSafeServed != 2 || r.Classified != 6 || r.L2 != 0.5 || r.FailSafe != 2.0/6 {
		t.Fatalf("ratios %+v", r)
	}
}

// TestFailSafeCounts: opted-in and other reads are counted apart, and a
// labelled stale answer to a read that did not opt in, or older than its
// allowance, is flagged.
func TestFailSafeCounts(t *testing.T) {
	var f failSafeCounts
	stale := CacheStatus{Tier: TierFailSafe}
	f.add(&sample{typ: ReqGet, optIn: true, allowS: 60, ageS: 3, cache: stale})
	f.add(&sample{typ: ReqGet, optIn: true, allowS: 60, failed: true})
	f.add(&sample{typ: ReqGet, failed: true})
	f.add(&sample{typ: ReqGet, cache: CacheStatus{Tier: TierL2}})
	f.add(&sample{typ: ReqGet, ageS: 2, cache: stale})                                              // not asked for
	f.add(&sample{typ: ReqBatch, optIn: true, allowS: 5, ageS: 9, keys: KeyTiers{TierFailSafe: 3}}) // too old
	f.add(&sample{typ: ReqUpdate, failed: true})                                                    // not a read
	var g failSafeCounts
	g.merge(f)
	got := g.summary(60 * time.Second)
	want := FailSafe{AllowanceS: 60, OptIn: 3, OptInFailed: 1, OtherReads: 3, OtherFailed: 1,
		Served: 5, Unrequested: 1, OverAllowance: 3, MaxAgeS: 9}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
