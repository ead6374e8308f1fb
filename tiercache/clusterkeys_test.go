package tiercache

import (
	"context"
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
