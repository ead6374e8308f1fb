package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGeneratorGet measures the generator's own cost per GET against
// the static handler in this process: one iteration per b.N, 8 VUs.
func BenchmarkGeneratorGet(b *testing.B) {
	product := []byte(`{"id":"p1","name":"Product A","description":"","price_cents":1000,"version":3}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"3"`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(product)
	}))
	defer srv.Close()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	sc := &Scenario{
		Targets: []string{srv.URL}, VUs: 8, Duration: Duration(time.Hour),
		Keys: KeySpec{Distribution: "zipf"}, Setup: Setup{Products: len(ids)}, Mix: Mix{Get: 1},
		Probe: ProbeSpec{Enabled: true}, MaxRequests: int64(b.N),
	}
	b.ReportAllocs()
	b.ResetTimer()
	sum, err := Run(b.Context(), sc, RunOptions{IDs: ids})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(sum.RPS, "req/s")
}
