package products

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBatchVsSingle serves 50 products as one GET /products?ids= and
// as 50 GET /products/{id}, through the whole handler, with every key in L1
// (tiered) or in L2 (the redis mode, where every read is a Redis read):
// wall time and process CPU time per key, side by side in one run
// (docs/design.md §3.17).
func BenchmarkBatchVsSingle(b *testing.B) {
	for _, tier := range []struct{ name, mode string }{{"L1", "tiered"}, {"L2", "redis"}} {
		e := newEnv(b)
		a := e.replica("a", tier.mode)
		ids := make([]string, 50)
		for i := range ids {
			ids[i], _ = a.create(b, "bench", 1)["id"].(string)
		}
		h := NewServer(nil, a.svc, newRegistry())
		batch := httptest.NewRequest(http.MethodGet, "/products?ids="+strings.Join(ids, ","), nil)
		singles := make([]*http.Request, len(ids))
		for i, id := range ids {
			singles[i] = httptest.NewRequest(http.MethodGet, "/products/"+id, nil)
		}
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, batch) // fills the tiers
		for _, kind := range []string{"batch", "single"} {
			b.Run(tier.name+"/"+kind, func(b *testing.B) {
				cpu0, t0 := cpuTime(b), time.Now()
				for b.Loop() {
					if kind == "batch" {
						clear(w.h)
						h.ServeHTTP(w, batch)
						continue
					}
					for _, req := range singles {
						clear(w.h)
						h.ServeHTTP(w, req)
					}
				}
				keys := float64(b.N * len(ids))
				b.ReportMetric(float64(time.Since(t0).Nanoseconds())/keys, "ns/key")
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/keys, "cpu-ns/key")
				if st := w.h.Get("Cache-Status"); kind == "batch" && tier.mode == "tiered" && st != `productsd-l1; hit; detail="50/50"` {
					b.Fatalf("batch Cache-Status %q, want all L1 hits", st)
				}
				if gets(a) != 1 {
					b.Fatalf("%d database queries, want 1 (the fill)", gets(a))
				}
			})
		}
	}
}
