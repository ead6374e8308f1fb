package tiercache

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	gocache "github.com/go-redis/cache/v9"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/tcpproxy"
	"golang.org/x/sync/singleflight"
)

// benchValue is a ready-to-serve product body, the size the service caches.
var benchValue = bytes.Repeat([]byte("x"), 220)

func bytesLoader(ctx context.Context) ([]byte, error) { return benchValue, nil }

func newBytesCache(b *testing.B, opt Options) *Cache[[]byte] {
	b.Helper()
	var c *Cache[[]byte]
	var err error
	if opt.Mode == ModeL1Only {
		c, err = New[[]byte](nil, BytesCodec{}, opt)
	} else {
		c, err = New[[]byte](needRedis(b), BytesCodec{}, opt)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// BenchmarkGetL1Hit is the hot path: an L1 hit. Compare with BenchmarkLRUGet,
// a bare golang-lru Get of the same key (target: at most 1.5x, 0 allocs).
func BenchmarkGetL1Hit(b *testing.B) {
	c := newBytesCache(b, Options{Mode: ModeL1Only})
	ctx := context.Background()
	if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
			b.Fatal(err)
		}
	}
	s := c.Stats()
	b.ReportMetric(float64(s.L1Hits)/float64(s.L1Hits+s.L1Misses), "hit/op")
}

// BenchmarkGetL1HitAt is BenchmarkGetL1Hit through GetAt, with the start
// of the read taken once, as an HTTP server takes it once per request for
// its own timing (products: the request's arrival): the hit reads no clock.
func BenchmarkGetL1HitAt(b *testing.B) {
	c := newBytesCache(b, Options{Mode: ModeL1Only})
	ctx := context.Background()
	if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetAt(ctx, start, "product:1", bytesLoader); err != nil {
			b.Fatal(err)
		}
	}
	s := c.Stats()
	b.ReportMetric(float64(s.L1Hits)/float64(s.L1Hits+s.L1Misses), "hit/op")
}

// BenchmarkLRUGet is the baseline for BenchmarkGetL1Hit.
func BenchmarkLRUGet(b *testing.B) {
	l, _ := lru.New[string, []byte](10000)
	l.Add("product:1", benchValue)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := l.Get("product:1"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetL1HitParallel is BenchmarkGetL1Hit from GOMAXPROCS goroutines
// over 1,000 keys, with L1 in one LRU and in 16 shards. Run it with
// -cpu 1,2,4,8: a per-op time that grows with the goroutines is contention.
func BenchmarkGetL1HitParallel(b *testing.B) {
	for _, shards := range []int{1, 16} {
		b.Run("shards="+strconv.Itoa(shards), func(b *testing.B) {
			c := newBytesCache(b, Options{Mode: ModeL1Only, L1Shards: shards})
			ctx := context.Background()
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = "product:" + strconv.Itoa(i)
				if _, err := c.Get(ctx, keys[i], bytesLoader); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := mrand.IntN(len(keys)) // goroutines apart, not in lockstep on one key
				for pb.Next() {
					i++
					if _, err := c.Get(ctx, keys[i%len(keys)], bytesLoader); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGetL2Hit reads one key from Redis each time (L1 off).
func BenchmarkGetL2Hit(b *testing.B) {
	c := newBytesCache(b, Options{Mode: ModeL2Only, Namespace: benchNamespace(b)})
	ctx := context.Background()
	if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeepFromL2 is what an L2 hit adds to keep the value as the
// key's fail-safe copy (docs/design.md §3.16), the same value read again:
// compare with BenchmarkGetL2Hit in the same run.
func BenchmarkKeepFromL2(b *testing.B) {
	c := newBytesCache(b, Options{Mode: ModeL2Only, Namespace: benchNamespace(b)})
	st := stampFill(time.Now(), time.Millisecond, time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.keepFromL2("product:1", benchValue, st)
	}
}

// BenchmarkGetMissLoad misses both tiers every time: L2 miss, lease, load,
// lease-guarded fill, fenced install.
func BenchmarkGetMissLoad(b *testing.B) {
	c := newBytesCache(b, Options{Namespace: benchNamespace(b), Standalone: true})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.Get(ctx, "miss:"+strconv.Itoa(i), bytesLoader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoRedisCache runs github.com/go-redis/cache/v9, the closest Go
// peer (local TinyLFU + Redis), on the same Redis and value: a local hit and
// a Redis hit.
func BenchmarkGoRedisCache(b *testing.B) {
	rdb := needRedis(b)
	ns := benchNamespace(b)
	ctx := context.Background()
	run := func(b *testing.B, cd *gocache.Cache) {
		key := ns + ":product:1"
		if err := cd.Set(&gocache.Item{Ctx: ctx, Key: key, Value: benchValue, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			var v []byte
			if err := cd.Get(ctx, key, &v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("local-hit", func(b *testing.B) {
		run(b, gocache.New(&gocache.Options{Redis: rdb, LocalCache: gocache.NewTinyLFU(10000, time.Minute)}))
	})
	b.Run("redis-hit", func(b *testing.B) {
		run(b, gocache.New(&gocache.Options{Redis: rdb}))
	})
}

func benchNamespace(b *testing.B) string {
	return namespace(b, needRedis(b))
}

// BenchmarkInvalidationLag measures, on loopback, the time from the start of
// an Invalidate on one replica to the eviction on another (the message
// applied), and reports its median and 99th percentile.
func BenchmarkInvalidationLag(b *testing.B) {
	rdb := needRedis(b)
	ns := namespace(b, rdb)
	applied := make(chan time.Time, 1)
	optB := Options{Namespace: ns}
	optB.hooks.onMessage = func(string, []string) { applied <- time.Now() }
	a := newCache(b, needRedis(b), Options{Namespace: ns})
	other := newCache(b, needRedis(b), optB)
	waitReady(b, a, other)
	ctx := context.Background()
	lags := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := a.Invalidate(ctx, "product:1"); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, (<-applied).Sub(start))
	}
	b.StopTimer()
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkHandOff isolates what the fill's goroutine costs around one
// Redis GET, the work of an L2 hit: run inline, as [flight] runs a fill's
// first stage, or handed to a new goroutine, as singleflight.DoChan does.
// It is the measurement behind flight.go replacing x/sync/singleflight.
func BenchmarkHandOff(b *testing.B) {
	rdb := needRedis(b)
	ctx := context.Background()
	key := benchNamespace(b) + ":handoff"
	if err := rdb.Set(ctx, key, benchValue, time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	get := func() (any, error) { return rdb.Get(ctx, key).Bytes() }
	b.Run("inline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := get(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("singleflight-dochan", func(b *testing.B) {
		var g singleflight.Group
		b.ReportAllocs()
		for b.Loop() {
			if r := <-g.DoChan(key, get); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
}

// BenchmarkInvalidationThroughput measures invalidations per second of one
// replica with 64 concurrent writers, batched (the default) and one message
// each (the design before batching), straight to Redis and through a proxy
// that adds 500µs each way, as a network between hosts would.
func BenchmarkInvalidationThroughput(b *testing.B) {
	rdb := needRedis(b)
	for _, latency := range []time.Duration{0, 500 * time.Microsecond} {
		addr := rdb.Options().Addr
		if latency > 0 {
			p, err := tcpproxy.New(addr)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			p.SetLatency(latency)
			addr = p.Addr()
		}
		for _, unbatched := range []bool{true, false} {
			name := fmt.Sprintf("latency=%v/batched=%v", latency, !unbatched)
			b.Run(name, func(b *testing.B) {
				opt := Options{Namespace: benchNamespace(b)}
				opt.hooks.unbatched = unbatched
				c, err := New[[]byte](redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128}), BytesCodec{}, opt)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = c.Close(); _ = c.rdb.Close() })
				ctx := context.Background()
				var n atomic.Int64
				b.SetParallelism(64 / runtime.GOMAXPROCS(0))
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := c.Invalidate(ctx, "product:"+strconv.FormatInt(n.Add(1), 10)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "inval/s")
			})
		}
	}
}
