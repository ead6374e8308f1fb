package tiercache

import (
	"context"
	"math/rand"
	"strconv"
	"testing"
	"unsafe"
)

// zipfScanTrace returns n reads of a Zipf-distributed key space of a
// million keys (s=1.01, the shape of product popularity) with, every
// scanEvery reads, a scan of scanLen keys read once each (a crawler, a
// walk over every page). Scan keys start with "scan".
func zipfScanTrace(n, scanEvery, scanLen int) []string {
	r := rand.New(rand.NewSource(1))
	z := rand.NewZipf(r, 1.01, 1, 1_000_000-1)
	out := make([]string, 0, n+n/max(scanEvery, 1)*scanLen)
	scanned := 0
	for len(out) < n {
		if scanEvery > 0 && len(out) > 0 && len(out)%scanEvery == 0 {
			for range scanLen {
				out = append(out, "scan"+strconv.Itoa(scanned))
				scanned++
			}
		}
		out = append(out, "product:"+strconv.FormatUint(z.Uint64(), 10))
	}
	return out
}

// BenchmarkL1Policy runs a Zipf trace, with and without periodic scans,
// through a 10,000-entry L1 under each policy, side by side: hit/op is
// the hit ratio of the Zipf reads (the scans' own reads never hit), ns/op
// the cost of a read of the trace (a hit or a miss and its fill).
//
//	go test -run '^$' -bench L1Policy -benchtime 1x ./tiercache/
func BenchmarkL1Policy(b *testing.B) {
	for _, tc := range []struct {
		name            string
		scanEvery, scan int
	}{{"zipf", 0, 0}, {"zipf+scans", 50_000, 20_000}} {
		trace := zipfScanTrace(500_000, tc.scanEvery, tc.scan)
		for _, p := range []L1Policy{PolicyLRU, Policy2Q} {
			b.Run(tc.name+"/"+p.String(), func(b *testing.B) {
				var ratio float64
				for b.Loop() {
					ratio = replayTrace(b, p, trace)
				}
				b.ReportMetric(ratio, "hit/op")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(trace)), "ns/read")
			})
		}
	}
}

// BenchmarkGetL1HitPolicy is BenchmarkGetL1Hit under each policy: what
// an L1 hit costs beside BenchmarkLRUGet's bare golang-lru Get.
func BenchmarkGetL1HitPolicy(b *testing.B) {
	for _, p := range []L1Policy{PolicyLRU, Policy2Q} {
		b.Run(p.String(), func(b *testing.B) {
			c := newBytesCache(b, Options{Mode: ModeL1Only, L1Policy: p})
			ctx := context.Background()
			for range 2 { // twice: 2Q then holds it as frequent
				if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx, "product:1", bytesLoader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// replayTrace reads every key of trace through a fresh L1-only cache of
// 10,000 entries under policy p and returns the hit ratio of the non-scan
// reads.
func replayTrace(b *testing.B, p L1Policy, trace []string) float64 {
	c := newBytesCache(b, Options{Mode: ModeL1Only, L1Policy: p, L1Shards: 1, L1Size: 10_000})
	ctx := context.Background()
	hits, reads := 0, 0
	for _, key := range trace {
		_, info, err := c.GetInfo(ctx, key, bytesLoader)
		if err != nil {
			b.Fatal(err)
		}
		if key[0] != 's' {
			reads++
			if info.Source == SourceL1 {
				hits++
			}
		}
	}
	return float64(hits) / float64(reads)
}

// TestL1PolicyScanResistance: under 2Q a scan of more keys than L1
// holds leaves the keys read twice before it in L1; under LRU it evicts
// them. Each policy is what its option says.
func TestL1PolicyScanResistance(t *testing.T) {
	for _, tc := range []struct {
		p        L1Policy
		survives bool
	}{{PolicyLRU, false}, {Policy2Q, true}, {PolicyDefault, true}} {
		t.Run(tc.p.String(), func(t *testing.T) {
			c, err := New[[]byte](nil, BytesCodec{}, Options{Mode: ModeL1Only, L1Policy: tc.p, L1Shards: 1, L1Size: 100})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			read := func(key string) Source {
				_, info, err := c.GetInfo(ctx, key, bytesLoader)
				if err != nil {
					t.Fatal(err)
				}
				return info.Source
			}
			for range 2 { // the hot set: read twice
				for i := range 20 {
					read("hot" + strconv.Itoa(i))
				}
			}
			for i := range 500 {
				read("scan" + strconv.Itoa(i))
			}
			kept := 0
			for i := range 20 {
				if read("hot"+strconv.Itoa(i)) == SourceL1 {
					kept++
				}
			}
			if got := kept == 20; got != tc.survives {
				t.Fatalf("%d of 20 hot keys still in L1 after a scan of 500; want all kept: %v", kept, tc.survives)
			}
			if n := c.Len(); n > 100 {
				t.Fatalf("L1 holds %d entries, over its size of 100", n)
			}
		})
	}
}

func TestParseL1Policy(t *testing.T) {
	for _, p := range []L1Policy{PolicyLRU, Policy2Q} {
		if got, err := ParseL1Policy(p.String()); err != nil || got != p {
			t.Errorf("ParseL1Policy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	if _, err := ParseL1Policy("lfu"); err == nil {
		t.Error("ParseL1Policy(\"lfu\"): no error")
	}
	if _, err := New[[]byte](nil, BytesCodec{}, Options{Mode: ModeL1Only, L1Policy: 9}); err == nil {
		t.Error("New with L1Policy 9: no error")
	}
}

// TestHitKeepsNoCallerKey: an L1 hit keeps nothing of the key string it
// was passed, under every policy (2Q's promotion from its recent queue to
// its frequent one re-inserts the entry, and must use the key it was
// installed with). A caller may then reuse the key's bytes once L1 has
// answered, as products does so that a hit allocates nothing.
func TestHitKeepsNoCallerKey(t *testing.T) {
	for _, p := range []L1Policy{PolicyLRU, Policy2Q} {
		t.Run(p.String(), func(t *testing.T) {
			c, err := New[[]byte](nil, BytesCodec{}, Options{Mode: ModeL1Only, L1Policy: p, L1Shards: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			ctx := context.Background()
			if _, err := c.Get(ctx, "product:a", bytesLoader); err != nil { // installed, seen once
				t.Fatal(err)
			}
			buf := []byte("product:a")
			_, info, err := c.GetInfo(ctx, unsafe.String(&buf[0], len(buf)), bytesLoader) // the hit that promotes
			if err != nil || info.Source != SourceL1 {
				t.Fatalf("second read: %v from %v, want an L1 hit", err, info.Source)
			}
			copy(buf, "product:b") // the caller reuses its buffer
			for _, key := range []string{"product:a", "product:b"} {
				_, info, err := c.GetInfo(ctx, key, bytesLoader)
				if err != nil {
					t.Fatal(err)
				}
				if want := key == "product:a"; (info.Source == SourceL1) != want {
					t.Errorf("%s: answered from %v, want an L1 hit: %v", key, info.Source, want)
				}
			}
		})
	}
}
