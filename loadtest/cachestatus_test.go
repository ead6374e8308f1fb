package loadtest

import (
	"reflect"
	"testing"
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
