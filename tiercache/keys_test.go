package tiercache

import (
	"context"
	"errors"
	"testing"
)

// TestGroupNamesDoNotAlias reads two (key, group) pairs that once shared
// one cache entry, because the group and its generation were joined to the
// key with separators either could contain: each gets its own value.
func TestGroupNamesDoNotAlias(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb), Mode: ModeL2Only})
	ctx := context.Background()
	get := func(key, group string, v int) int {
		t.Helper()
		got, err := c.Get(ctx, key, func(context.Context) (int, error) { return v, nil }, InGroup(group))
		if err != nil {
			t.Fatalf("Get(%q, InGroup(%q)): %v", key, group, err)
		}
		return got
	}
	if got := get("b#0:c", "a", 111); got != 111 {
		t.Fatalf("first pair: got %d, want 111", got)
	}
	if got := get("c", "a#0:b", 222); got != 222 {
		t.Fatalf("(key %q, group %q) read the entry of (key %q, group %q): got %d, want 222", "c", "a#0:b", "b#0:c", "a", got)
	}
}

// TestNULIsAnInvalidKey: NUL separates a group from its key in the cache's
// own keys, so no key or group name may contain it.
func TestNULIsAnInvalidKey(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb)})
	ctx := context.Background()
	load := func(context.Context) (int, error) { return 1, nil }
	for name, err := range map[string]error{
		"Get key":             get(c, ctx, "a\x00b", load),
		"Get group":           get(c, ctx, "a", load, InGroup("g\x00")),
		"Invalidate":          c.Invalidate(ctx, "ok", "\x00"),
		"InvalidateGroup":     c.InvalidateGroup(ctx, "g\x00h"),
		"InvalidateGroup key": c.InvalidateGroup(ctx, "g", "\x00"),
	} {
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s with NUL: got %v, want ErrInvalidKey", name, err)
		}
	}
	items, _ := c.GetManyInfo(ctx, []string{"ok", "a\x00"}, func(_ context.Context, keys []string) (map[string]int, error) {
		return map[string]int{"ok": 1}, nil
	})
	if !errors.Is(items["a\x00"].Err, ErrInvalidKey) || items["ok"].Val != 1 {
		t.Errorf("GetManyInfo with one NUL key: got %+v, want ErrInvalidKey for it and 1 for ok", items)
	}
}

// rule 10 (and rule 12): InGroup("") reads no group, so InvalidateGroup
// of "" could never retire anything: it is refused, not a silent no-op.
func TestEmptyGroupIsInvalid(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newCache(t, rdb, Options{Namespace: namespace(t, rdb)})
	if err := c.InvalidateGroup(context.Background(), "", "k"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("InvalidateGroup of the empty group: got %v, want ErrInvalidKey", err)
	}
}

func get(c *Cache[int], ctx context.Context, key string, load LoadFunc[int], opts ...GetOption) error {
	_, err := c.Get(ctx, key, load, opts...)
	return err
}

// FuzzGroupedKeys: two different reads, (key, group, generation) with ""
// for no group, never map to the same Redis key.
func FuzzGroupedKeys(f *testing.F) {
	f.Add("b#0:c", "a", uint64(0), "c", "a#0:b", uint64(0))
	f.Add("g#5:x", "", uint64(0), "x", "g", uint64(5))
	f.Add("a", "b", uint64(1), "a", "b", uint64(11))
	f.Add("}", "{", uint64(0), "{}", "", uint64(0))
	l := &l2{opt: &Options{Namespace: "ns"}}
	f.Fuzz(func(t *testing.T, k1, g1 string, n1 uint64, k2, g2 string, n2 uint64) {
		if g1 == "" {
			n1 = 0
		}
		if g2 == "" {
			n2 = 0
		}
		if k1 == k2 && g1 == g2 && n1 == n2 {
			return
		}
		if validKey(k1) != nil || validKey(g1) != nil || validKey(k2) != nil || validKey(g2) != nil {
			return
		}
		r1, r2 := l.valueKey(groupedKey(g1, n1, k1)), l.valueKey(groupedKey(g2, n2, k2))
		if r1 == r2 {
			t.Fatalf("(%q, %q, %d) and (%q, %q, %d) share the Redis key %q", k1, g1, n1, k2, g2, n2, r1)
		}
	})
}
