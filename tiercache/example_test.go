package tiercache_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tiercache/productcache/tiercache"
)

// A product as the service would keep it ready to serve.
type product struct {
	ID    string
	Price int
}

// db stands in for the database behind the cache.
var db = map[string]product{"1": {ID: "1", Price: 1000}}

func loadProduct(id string) tiercache.LoadFunc[product] {
	return func(ctx context.Context) (product, error) {
		p, ok := db[id]
		if !ok {
			return product{}, tiercache.ErrNotFound
		}
		return p, nil
	}
}

func ExampleCache_Get() {
	// In production: tiercache.New[product](redisClient, nil, tiercache.Options{Namespace: "shop"}).
	// ModeL1Only needs no Redis, which keeps the example self-contained.
	cache, err := tiercache.New[product](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only})
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	ctx := context.Background()
	for range 2 {
		p, info, err := cache.GetInfo(ctx, "product:1", loadProduct("1"))
		fmt.Println(p.Price, info.Source, err)
	}
	_, err = cache.Get(ctx, "product:2", loadProduct("2"))
	fmt.Println(errors.Is(err, tiercache.ErrNotFound))
	// Output:
	// 1000 loader <nil>
	// 1000 l1 <nil>
	// true
}

func ExampleCache_Invalidate() {
	cache, err := tiercache.New[product](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	ctx := context.Background()
	_, _ = cache.Get(ctx, "product:1", loadProduct("1"))

	// Commit the change first, then invalidate.
	db["1"] = product{ID: "1", Price: 1200}
	_ = cache.Invalidate(ctx, "product:1")

	p, _ := cache.Get(ctx, "product:1", loadProduct("1"))
	fmt.Println(p.Price)
	// Output: 1200
}

func ExampleInGroup() {
	cache, err := tiercache.New[[]string](nil, nil, tiercache.Options{Mode: tiercache.ModeL1Only})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	ctx := context.Background()
	names := []string{"a", "b"}
	page := func(ctx context.Context) ([]string, error) { return append([]string(nil), names...), nil }

	first, _ := cache.Get(ctx, "page:1", page, tiercache.InGroup("products:list"))
	names = append(names, "c")
	// One call retires every page of the group, however many are cached.
	_ = cache.InvalidateGroup(ctx, "products:list")
	second, _ := cache.Get(ctx, "page:1", page, tiercache.InGroup("products:list"))
	fmt.Println(first, second)
	// Output: [a b] [a b c]
}
