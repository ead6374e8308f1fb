package loadtest

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGeneratorGet measures the generator's own cost per GET against
// the static handler in this process: one iteration per b.N, 8 VUs.
func BenchmarkGeneratorGet(b *testing.B) {
	srv := httptest.NewServer(&StaticServer{
		Product: []byte(`{"id":"p1","name":"Product A","description":"","price_cents":1000,"version":3}`),
		ETag:    `"3"`,
	})
	defer srv.Close()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	sc := &Scenario{
		Targets: []string{srv.URL}, VUs: 8, Duration: Duration(time.Hour),
		Keys: KeySpec{Distribution: "zipf"}, Setup: Setup{IDs: ids, Products: len(ids)},
		Probe: ProbeSpec{Enabled: true}, MaxRequests: int64(b.N),
	}
	b.ReportAllocs()
	b.ResetTimer()
	sum, err := Run(b.Context(), sc, RunOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(sum.RPS, "req/s")
}
