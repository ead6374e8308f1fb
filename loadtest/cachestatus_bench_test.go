package loadtest

import "testing"

// cacheStatusValues are what productsd sends: an L1 hit, an L2 hit and an
// answer from the fail-safe store.
var cacheStatusValues = []string{
	"productsd-l1; hit",
	"productsd-l2; hit, productsd-l1; fwd=miss; stored",
	`productsd-failsafe; hit; ttl=-3; detail="db-error"`,
}

var sinkCacheStatus CacheStatus

// BenchmarkCacheStatus measures the classification of a GET's
// Cache-Status: parsed (httpsfv) and classified each time, and through a
// run's memo, side by side. Compare with BenchmarkGeneratorGet, the
// generator's whole cost per GET, in the same run.
func BenchmarkCacheStatus(b *testing.B) {
	for _, v := range cacheStatusValues {
		b.Run("parse/"+v, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkCacheStatus = classifyHeader(v)
			}
		})
		b.Run("memo/"+v, func(b *testing.B) {
			var memo statusMemo
			b.ReportAllocs()
			for b.Loop() {
				sinkCacheStatus = memo.classify(v)
			}
		})
	}
}
