package tiercacheprom_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/productcache/tiercache"
	"github.com/tiercache/productcache/tiercache/tiercacheprom"
)

// Example registers a cache's metrics on a registry of the caller's and reads
// some of them back; a server would serve the registry with promhttp.
func Example() {
	cache, err := tiercache.New[string](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only})
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(tiercacheprom.NewCollector(cache, tiercacheprom.Options{
		ConstLabels: prometheus.Labels{"cache": "products"},
	}))

	load := func(context.Context) (string, error) { return "widget", nil }
	for range 3 {
		_, _ = cache.Get(context.Background(), "product:1", load)
	}

	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "tiercache_hits_total", "tiercache_loads_total", "tiercache_l1_max_age_seconds":
			for _, m := range mf.GetMetric() {
				labels := ""
				for _, l := range m.GetLabel() {
					labels += fmt.Sprintf(" %s=%s", l.GetName(), l.GetValue())
				}
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				fmt.Printf("%s%s %v\n", mf.GetName(), labels, v)
			}
		}
	}
	// Output:
	// tiercache_hits_total cache=products tier=l1 2
	// tiercache_hits_total cache=products tier=l2 0
	// tiercache_l1_max_age_seconds cache=products 30
	// tiercache_loads_total cache=products 1
}
