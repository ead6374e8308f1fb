package tiercache

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// panicCodec is a JSON codec for ints that panics on encoding badValue and
// on decoding badPayload, as a library user's codec might.
type panicCodec struct{}

const (
	badValue   = 666
	badPayload = "boom"
)

func (panicCodec) Marshal(v int) ([]byte, error) {
	if v == badValue {
		panic("codec cannot encode")
	}
	return json.Marshal(v)
}

func (panicCodec) Unmarshal(b []byte) (int, error) {
	if string(b) == badPayload {
		panic("codec cannot decode")
	}
	var v int
	err := json.Unmarshal(b, &v)
	return v, err
}

func newPanicCodecCache(t *testing.T, rdb redis.UniversalClient, opt Options) *Cache[int] {
	t.Helper()
	opt.StalenessBound, opt.L2Timeout = time.Second, time.Second
	c, err := New[int](rdb, panicCodec{}, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rule 12: a codec that panics on decode is an undecodable value: a miss,
// the L2 value deleted (the fill then stores the loaded value under its
// lease, which it could not take with the value still there), counted.
func TestDecodePanicIsAMiss(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	src := newSource()
	src.set("k", 5)
	c := newPanicCodecCache(t, rdb, Options{Namespace: namespace(t, rdb), Mode: ModeL2Only})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := rdb.Set(ctx, c.l2.valueKey("k"), "v"+badPayload, 0).Err(); err != nil {
			t.Fatal(err)
		}
		v, info, err := c.GetInfo(ctx, "k", src.loader("k"))
		if err != nil || v != 5 || info.Source != SourceLoader || !info.L2Stored {
			t.Fatalf("read %d: got %d %+v %v, want 5 loaded and stored in L2", i, v, info, err)
		}
	}
	if s := c.Stats(); s.DecodeErrors != 3 {
		t.Fatalf("decode errors: got %d, want 3", s.DecodeErrors)
	}
	if v, info := mustGet(t, c, "k", src); v != 5 || info.Source != SourceL2 {
		t.Fatalf("next read: got %d from %v, want 5 from L2", v, info.Source)
	}
}

// rule 12, batch reads: the same for GetMany, the other keys unharmed.
func TestGetManyDecodePanicIsAMiss(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	c := newPanicCodecCache(t, rdb, Options{Namespace: namespace(t, rdb), Mode: ModeL2Only})
	ctx := context.Background()
	if err := rdb.Set(ctx, c.l2.valueKey("bad"), "v"+badPayload, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, c.l2.valueKey("good"), "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	load := func(_ context.Context, keys []string) (map[string]int, error) {
		out := make(map[string]int, len(keys))
		for _, k := range keys {
			out[k] = 1
		}
		return out, nil
	}
	items, err := c.GetManyInfo(ctx, []string{"bad", "good"}, load)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := items["bad"], items["good"]
	if bad.Err != nil || bad.Val != 1 || bad.Info.Source != SourceLoader || !bad.Info.L2Stored {
		t.Fatalf("bad: got %+v, want 1 loaded and stored in L2", bad)
	}
	if good.Err != nil || good.Val != 2 || good.Info.Source != SourceL2 {
		t.Fatalf("good: got %+v, want 2 from L2", good)
	}
	if s := c.Stats(); s.DecodeErrors != 1 {
		t.Fatalf("decode errors: got %d, want 1", s.DecodeErrors)
	}
}

// leaseLeft fails t if a lease of key is still in Redis.
func leaseLeft(t *testing.T, rdb *redis.Client, c *Cache[int], key string) {
	t.Helper()
	n, err := rdb.Exists(context.Background(), c.l2.leaseKey(key)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("the lease of %q is still held: another replica would wait LeaseWait for it", key)
	}
}

// rule 12 (and rule 4): a codec that panics on encode does not fail a
// read whose load succeeded: the value is returned, nothing is stored in
// L2, and the lease is released, so another replica loads at once instead
// of waiting for it (its LeaseWait is far longer than the test).
func TestEncodePanicReturnsLoadedValue(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	src := newSource()
	src.set("k", badValue)
	a := newPanicCodecCache(t, rdb, Options{Namespace: ns, Mode: ModeL2Only})
	b := newPanicCodecCache(t, needRedis(t), Options{Namespace: ns, Mode: ModeL2Only, LeaseWait: time.Hour})
	v, info, err := a.GetInfo(context.Background(), "k", src.loader("k"))
	if err != nil || v != badValue || info.Source != SourceLoader || info.L2Stored {
		t.Fatalf("got %d %+v %v, want %d loaded, not stored in L2", v, info, err, badValue)
	}
	if s := a.Stats(); s.EncodeErrors != 1 {
		t.Fatalf("encode errors: got %d, want 1", s.EncodeErrors)
	}
	leaseLeft(t, rdb, a, "k")
	v, info, err = b.GetInfo(context.Background(), "k", src.loader("k"))
	if err != nil || v != badValue || info.Source != SourceLoader || info.LeaseWaited {
		t.Fatalf("other replica: got %d %+v %v, want %d loaded without waiting for a lease", v, info, err, badValue)
	}
}

// rule 12 and rule 17: the same for GetMany, the other keys stored.
func TestGetManyEncodePanicReturnsLoadedValue(t *testing.T) {
	t.Parallel()
	rdb := needRedis(t)
	ns := namespace(t, rdb)
	a := newPanicCodecCache(t, rdb, Options{Namespace: ns, Mode: ModeL2Only})
	load := func(_ context.Context, keys []string) (map[string]int, error) {
		return map[string]int{"bad": badValue, "good": 2}, nil
	}
	items, err := a.GetManyInfo(context.Background(), []string{"bad", "good"}, load)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := items["bad"], items["good"]
	if bad.Err != nil || bad.Val != badValue || bad.Info.Source != SourceLoader || bad.Info.L2Stored {
		t.Fatalf("bad: got %+v, want %d loaded, not stored in L2", bad, badValue)
	}
	if good.Err != nil || good.Val != 2 || !good.Info.L2Stored {
		t.Fatalf("good: got %+v, want 2 loaded and stored in L2", good)
	}
	leaseLeft(t, rdb, a, "bad")
	b := newPanicCodecCache(t, needRedis(t), Options{Namespace: ns, Mode: ModeL2Only, LeaseWait: time.Hour})
	items, err = b.GetManyInfo(context.Background(), []string{"bad"}, load)
	if err != nil || items["bad"].Err != nil || items["bad"].Info.LeaseWaited {
		t.Fatalf("other replica: got %+v %v, want loaded without waiting for a lease", items["bad"], err)
	}
}
