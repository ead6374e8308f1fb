package tiercache

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// zipfRun is what one configuration of TestRefreshAheadZipf measured.
type zipfRun struct {
	mu                 sync.Mutex
	reqs, hot          int
	waited, hotWaited  int // requests answered by (or after) a loader call
	lat, hotLat        []time.Duration
	loads, refreshes   uint64
	name               string
	refreshAhead       float64
	caches             [2]*Cache[int]
	namespace, hotKeys string
}

// TestRefreshAheadZipf measures eager refresh: two configurations (off,
// and RefreshAhead 0.1) run side by side in one process, each two caches
// sharing one Redis namespace, with an L2 TTL of 2s (TIERCACHE_ZIPF_L2TTL
// sets another) and a 500ms L1 TTL, under a paced Zipf (s=1.1) read load
// over 1,000 keys whose loader takes 2ms. It reports, after a warm-up of
// one L2 TTL, the requests that waited for the loader on the top 1% of
// keys and overall, and the p99 latency. Run with TIERCACHE_ZIPF_RUN set
// to the duration, e.g.:
//
//	TIERCACHE_ZIPF_RUN=30s go test -run TestRefreshAheadZipf -v ./tiercache/
func TestRefreshAheadZipf(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("TIERCACHE_ZIPF_RUN"))
	if err != nil {
		t.Skip("set TIERCACHE_ZIPF_RUN to a duration to run the eager refresh measurement")
	}
	l2TTL := 2 * time.Second
	if s := os.Getenv("TIERCACHE_ZIPF_L2TTL"); s != "" {
		if l2TTL, err = time.ParseDuration(s); err != nil || l2TTL <= 0 {
			t.Fatalf("TIERCACHE_ZIPF_L2TTL=%q: want a positive duration", s)
		}
	}
	rdb := needRedis(t)
	runs := []*zipfRun{{name: "off", refreshAhead: -1}, {name: "refresh 0.1", refreshAhead: 0.1}}
	for _, r := range runs {
		opt := Options{Namespace: namespace(t, rdb), L2TTL: l2TTL, L1TTL: 500 * time.Millisecond, RefreshAhead: r.refreshAhead}
		r.caches[0], r.caches[1] = newCache(t, rdb, opt), newCache(t, rdb, opt)
		waitReady(t, r.caches[0], r.caches[1])
	}
	warm := time.Now().Add(l2TTL)
	end := warm.Add(d)
	var wg sync.WaitGroup
	for _, r := range runs {
		for w := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); r.work(int64(w), warm, end) }()
		}
	}
	wg.Wait()
	t.Logf("%d s Zipf run, 2 replicas per configuration, L2 TTL %v, loader 2ms:", int(d.Seconds()), l2TTL)
	t.Logf("%-12s %9s %12s %10s %12s %9s %10s %10s", "config", "requests", "hot waited", "hot p99", "all waited", "all p99", "loads", "refreshes")
	for _, r := range runs {
		for _, c := range r.caches {
			st := c.Stats()
			r.loads += st.Loads
			r.refreshes += st.Refreshes
		}
		t.Logf("%-12s %9d %6d/%-5d %10v %12d %9v %10d %10d", r.name, r.reqs, r.hotWaited, r.hot, p99(r.hotLat), r.waited, p99(r.lat), r.loads, r.refreshes)
	}
	if off, on := runs[0], runs[1]; off.hotWaited > 0 && on.hotWaited*10 > off.hotWaited {
		t.Errorf("eager refresh left %d hot-key requests waiting for the loader, off %d: want at most a tenth", on.hotWaited, off.hotWaited)
	}
}

// work reads Zipf-chosen keys from the two caches in turn, about every
// 200µs, until end, counting from warm on.
func (r *zipfRun) work(seed int64, warm, end time.Time) {
	rng := rand.New(rand.NewSource(seed))
	z := rand.NewZipf(rng, 1.1, 1, 999)
	var lat, hotLat []time.Duration
	var reqs, hot, waited, hotWaited int
	for i := 0; ; i++ {
		now := time.Now()
		if now.After(end) {
			break
		}
		n := int(z.Uint64())
		key := strconv.Itoa(n)
		_, info, err := r.caches[i%2].GetInfo(context.Background(), key, func(ctx context.Context) (int, error) {
			time.Sleep(2 * time.Millisecond) // the database
			return n + 1, nil
		})
		el := time.Since(now)
		if err != nil {
			panic(fmt.Sprintf("Get(%s): %v", key, err))
		}
		if now.After(warm) {
			loaded := info.Source == SourceLoader
			reqs, lat = reqs+1, append(lat, el)
			if loaded {
				waited++
			}
			if n < 10 { // the top 1% of 1,000 keys
				hot, hotLat = hot+1, append(hotLat, el)
				if loaded {
					hotWaited++
				}
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs, r.hot, r.waited, r.hotWaited = r.reqs+reqs, r.hot+hot, r.waited+waited, r.hotWaited+hotWaited
	r.lat, r.hotLat = append(r.lat, lat...), append(r.hotLat, hotLat...)
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100].Round(time.Microsecond)
}
