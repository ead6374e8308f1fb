package tiercache

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestRejectedRetryIsDropped queues two invalidations on a writer: a group
// whose Redis key holds a list (the bump fails with WRONGTYPE, for good) and
// a key whose delete failed for a reason that passes (DEL denied, then
// allowed again). The retry drops the group, logs and counts it, and the
// key queued beside it still reaches the other replica.
func TestRejectedRetryIsDropped(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	admin := srv.client(t)
	wrdb := aclUser(t, srv, admin, "writer", append(allowAll, "-del")...)
	ctx := context.Background()
	src := newSource()
	src.set("k", 1)
	got := make(chan []string, 10)
	optB := fastOptions("rejected")
	optB.hooks.onMessage = func(_ string, keys []string) { got <- keys }
	a := newCache(t, wrdb, fastOptions("rejected"))
	b := newCache(t, srv.client(t), optB)
	waitReady(t, a, b)
	mustGet(t, b, "k", src)
	if err := admin.LPush(ctx, a.l2.groupKey("bad"), "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.InvalidateGroup(ctx, "bad"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("bump of a group whose key holds a list: got %v, want ErrDeferred", err)
	}
	src.set("k", 2)
	if err := a.Invalidate(ctx, "k"); !errors.Is(err, ErrDeferred) {
		t.Fatalf("invalidate with DEL denied: got %v, want ErrDeferred", err)
	}
	setACL(t, admin, "writer", allowAll...)
	deadline := time.After(10 * time.Second)
	for delivered := false; !delivered; {
		select {
		case keys := <-got:
			delivered = slices.Contains(keys, "k")
		case <-deadline:
			t.Fatalf("the key queued beside a rejected group never reached the other replica (stats %+v)", a.Stats())
		}
	}
	eventually(t, 10*time.Second, "the rejected group dropped from the queue", func() bool {
		s := a.Stats()
		return s.RetryQueued == 0 && s.InvalidationsDropped == 1
	})
	if v, _ := mustGet(t, b, "k", src); v != 2 {
		t.Fatalf("after the retry: got %d, want 2", v)
	}
}
