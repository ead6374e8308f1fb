package tiercache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// oddKeys are keys whose braces, or lack of them, once spread a key's
// value and lease over two Cluster slots (CROSSSLOT) or put every one of
// them in one slot.
var oddKeys = []string{"", "}x", "{a}b", "a}", "{", "}", "{}", "x{y}z", "%", "%7D"}

// TestClusterOddKeys reads, invalidates and batch-reads keys of every
// shape on a real Redis Cluster: each key's Redis keys share one slot, a
// read stores in L2, an invalidation goes through at once (not deferred)
// and reaches the other replica.
func TestClusterOddKeys(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	admin := clusterClient(t, addrs)
	src := newSource()
	a := newCache(t, clusterClient(t, addrs), Options{Namespace: "odd", L2Timeout: time.Second})
	b := newCache(t, clusterClient(t, addrs), Options{Namespace: "odd", L2Timeout: time.Second})
	waitReady(t, a, b)
	ctx := context.Background()
	for _, k := range oddKeys {
		vs, _ := admin.ClusterKeySlot(ctx, a.l2.valueKey(k)).Result()
		ls, _ := admin.ClusterKeySlot(ctx, a.l2.leaseKey(k)).Result()
		if vs != ls {
			t.Errorf("key %q: value in slot %d, lease in slot %d", k, vs, ls)
		}
		src.set(k, 1)
		if _, info := mustGet(t, a, k, src); !info.L2Stored {
			t.Errorf("key %q: not stored in L2 (%+v)", k, info)
		}
		mustGet(t, b, k, src)
		src.set(k, 2)
		if err := a.Invalidate(ctx, k); err != nil {
			t.Errorf("Invalidate(%q): %v", k, err)
		}
	}
	for _, k := range oddKeys {
		eventually(t, 3*time.Second, "b sees the write of an odd key", func() bool {
			v, _ := mustGet(t, b, k, src)
			return v == 2
		})
	}
	items, err := a.GetManyInfo(ctx, oddKeys, func(_ context.Context, keys []string) (map[string]int, error) {
		t.Errorf("batch read loaded %q: every key is in L1 or L2", keys)
		return nil, nil
	})
	for _, k := range oddKeys {
		if it := items[k]; err != nil || it.Err != nil || it.Val != 2 {
			t.Errorf("GetManyInfo %q: got %+v, %v, want 2", k, it, err)
		}
	}
	if s := a.Stats(); s.RetryQueued != 0 || s.InvalidationsDropped != 0 {
		t.Fatalf("a: %d queued, %d dropped, want none", s.RetryQueued, s.InvalidationsDropped)
	}
}

// rule 11 (and rule 10): TestClusterOddGroups reads pages in groups of every odd name but the
// empty one (InGroup("") reads no group) on a real Redis Cluster: each read stores in L2, each InvalidateGroup goes through
// at once (not deferred) and retires the group on the other replica.
func TestClusterOddGroups(t *testing.T) {
	t.Parallel()
	oddGroups := oddKeys[1:]
	addrs := startCluster(t)
	src := newSource()
	a := newCache(t, clusterClient(t, addrs), Options{Namespace: "oddg", L2Timeout: time.Second})
	b := newCache(t, clusterClient(t, addrs), Options{Namespace: "oddg", L2Timeout: time.Second})
	waitReady(t, a, b)
	ctx := context.Background()
	page := func(c *Cache[int], i int) (int, Info) {
		t.Helper()
		k := "page" + strconv.Itoa(i)
		v, info, err := c.GetInfo(ctx, k, src.loader(k), InGroup(oddGroups[i]))
		if err != nil {
			t.Fatalf("read in group %q: %v", oddGroups[i], err)
		}
		return v, info
	}
	for i, g := range oddGroups {
		src.set("page"+strconv.Itoa(i), 1)
		if _, info := page(a, i); !info.L2Stored {
			t.Errorf("group %q: not stored in L2 (%+v)", g, info)
		}
		page(b, i)
		src.set("page"+strconv.Itoa(i), 2)
		if err := a.InvalidateGroup(ctx, g); err != nil {
			t.Errorf("InvalidateGroup(%q): %v", g, err)
		}
	}
	for i := range oddGroups {
		eventually(t, 3*time.Second, "b sees the write in group "+strconv.Quote(oddGroups[i]), func() bool {
			v, _ := page(b, i)
			return v == 2
		})
	}
}
