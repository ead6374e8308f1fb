package loadtest_test

import (
	"fmt"

	"github.com/tiercache/productcache/loadtest"
)

func ExampleClassifyCacheStatus() {
	for _, h := range []string{
		"productsd-l1; hit",
		"productsd-l2; hit, productsd-l1; fwd=miss; stored",
		"productsd-l2; fwd=miss; stored; collapsed, productsd-l1; fwd=miss; stored",
	} {
		members, err := loadtest.ParseCacheStatus(h)
		if err != nil {
			fmt.Println(err)
			continue
		}
		cs := loadtest.ClassifyCacheStatus(members)
		fmt.Println(cs.Tier, cs.Collapsed)
	}
	// Output:
	// l1 false
	// l2 false
	// origin true
}

func ExampleParseThreshold() {
	t, err := loadtest.ParseThreshold(`http_req_duration{type:get}: p(99)<2.5ms`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Metric, t.Tags["type"], t.Agg, t.P, t.Op, t.Value)
	fmt.Println(t.Pass(1.9), t.Pass(3))
	// Output:
	// http_req_duration get p 99 < 2.5
	// true false
}
