// Package l1policy compares eviction policies for tiercache's L1 on the
// trace tiercache's BenchmarkL1Policy replays: golang-lru's LRU and 2Q
// (what tiercache offers), golang-lru's ARC, and two W-TinyLFU caches,
// otter and theine. It is a module of its own so that the candidates'
// dependencies stay out of the library's go.mod.
//
//	cd benchmarks/l1policy && go test -bench . -benchtime 1x
package l1policy

import (
	"math/rand"
	"strconv"
	"testing"

	theine "github.com/Yiling-J/theine-go"
	arc "github.com/hashicorp/golang-lru/arc/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

// cache is what a policy must do for L1: find, and add on a miss.
type cache interface {
	Get(key string) (int, bool)
	Add(key string, v int)
}

const size = 10_000

type lruCache struct{ *lru.Cache[string, int] }

func (c lruCache) Add(k string, v int) { c.Cache.Add(k, v) }

type otterCache struct{ *otter.Cache[string, int] }

func (c otterCache) Get(k string) (int, bool) { return c.GetIfPresent(k) }
func (c otterCache) Add(k string, v int)      { c.Set(k, v) }

type theineCache struct{ *theine.Cache[string, int] }

func (c theineCache) Add(k string, v int) { c.Set(k, v, 1) }

var policies = []struct {
	name string
	make func() cache
}{
	{"lru", func() cache { c, _ := lru.New[string, int](size); return lruCache{c} }},
	{"2q", func() cache { c, _ := lru.New2Q[string, int](size); return c }},
	{"arc", func() cache { c, _ := arc.NewARC[string, int](size); return c }},
	{"otter", func() cache { return otterCache{otter.Must(&otter.Options[string, int]{MaximumSize: size})} }},
	{"theine", func() cache { c, _ := theine.NewBuilder[string, int](size).Build(); return theineCache{c} }},
}

// trace is tiercache's zipfScanTrace: n reads of a million keys, Zipf
// s=1.01, and every scanEvery reads a scan of scanLen keys read once.
func trace(n, scanEvery, scanLen int) []string {
	r := rand.New(rand.NewSource(1))
	z := rand.NewZipf(r, 1.01, 1, 1_000_000-1)
	out := make([]string, 0, n)
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

// BenchmarkHitRatio reports each policy's hit ratio on the Zipf reads of
// the trace, with and without periodic scans.
func BenchmarkHitRatio(b *testing.B) {
	for _, tc := range []struct {
		name            string
		scanEvery, scan int
	}{{"zipf", 0, 0}, {"zipf+scans", 50_000, 20_000}} {
		tr := trace(500_000, tc.scanEvery, tc.scan)
		for _, p := range policies {
			b.Run(tc.name+"/"+p.name, func(b *testing.B) {
				var ratio float64
				for b.Loop() {
					ratio = replay(p.make(), tr)
				}
				b.ReportMetric(ratio, "hit/op")
			})
		}
	}
}

func replay(c cache, tr []string) float64 {
	hits, reads := 0, 0
	for _, k := range tr {
		_, ok := c.Get(k)
		if !ok {
			c.Add(k, 1)
		}
		if k[0] != 's' {
			reads++
			if ok {
				hits++
			}
		}
	}
	return float64(hits) / float64(reads)
}

// BenchmarkHit is the cost of a hit on a key read before.
func BenchmarkHit(b *testing.B) {
	for _, p := range policies {
		b.Run(p.name, func(b *testing.B) {
			c := p.make()
			c.Add("product:1", 1)
			c.Get("product:1")
			b.ReportAllocs()
			for b.Loop() {
				c.Get("product:1")
			}
		})
	}
}
