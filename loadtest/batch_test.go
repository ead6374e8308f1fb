package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestClassifyBatchCacheStatus(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   KeyTiers
		ok     bool
	}{
		// the README's example: 50 keys from L1, 30 from L2, 20 from the database
		{`productsd-l2; fwd=miss; stored; detail="30/50", productsd-l1; fwd=miss; stored; detail="50/100"`, KeyTiers{TierL1: 50, TierL2: 30, TierOrigin: 20}, true},
		{`productsd-l1; hit; detail="20/20"`, KeyTiers{TierL1: 20}, true},                             // L1 answered all: no L2 member
		{`productsd-l2; fwd=miss; detail="3/10"`, KeyTiers{TierL2: 3, TierOrigin: 7}, true},           // CACHE_MODE=redis
		{`productsd-l1; fwd=miss; stored; detail="0/4"`, KeyTiers{TierOrigin: 4}, true},               // CACHE_MODE=local
		{`productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored`, KeyTiers{}, false},         // no detail
		{`productsd-l1; fwd=miss; detail="5/4"`, KeyTiers{}, false},                                   // more hits than keys
		{`productsd-l2; hit; detail="9/9", productsd-l1; fwd=miss; detail="5/10"`, KeyTiers{}, false}, // hits exceed the keys asked
		{`productsd-l1; fwd=miss; detail="x/4"`, KeyTiers{}, false},
	} {
		members, err := ParseCacheStatus(tt.header)
		if err != nil {
			t.Fatalf("%s: %v", tt.header, err)
		}
		got, ok := ClassifyBatchCacheStatus(members)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %v %v, want %v %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBatchRatiosCountKeys runs single and batch reads against fake
// replicas whose batches answer from L1, a shared L2 and the store, and
// checks the run counts every key of a batch in the hit ratios, with the
// tiers the fake answered them from.
func TestBatchRatiosCountKeys(t *testing.T) {
	f, urls := newFakeAPI(t, 2, 300, true)
	const size = 25
	sc := &Scenario{
		Targets: urls, VUs: 3, Duration: Duration(20 * time.Second), // MaxRequests ends the run
		Keys: KeySpec{Distribution: "zipf", S: 1.1}, Mix: Mix{Get: 1, Batch: 3, Update: 0.2},
		BatchSize: size, Setup: Setup{Products: 300}, Probe: ProbeSpec{Enabled: true}, MaxRequests: 200,
		Thresholds: map[string][]string{`cache_hit_ratio{type="batch",tier="l2"}`: {"rate>0"}, "checks": {"rate==1"}},
	}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, g := sum.Types["batch"], sum.Types["get"]
	if b.Requests == 0 || g.Requests == 0 || b.Cache == nil {
		t.Fatalf("types %+v, want gets and batches", sum.Types)
	}
	f.mu.Lock()
	fake := f.batchKeys
	f.mu.Unlock()
	keys := fake[TierL1] + fake[TierL2] + fake[TierOrigin]
	if keys != b.Requests*size || b.Cache.Classified != keys || b.Cache.Unknown != 0 {
		t.Fatalf("%d batches of %d: fake answered %d keys, the run classified %d (%d unknown)", b.Requests, size, keys, b.Cache.Classified, b.Cache.Unknown)
	}
	for tier, got := range map[Tier]float64{TierL1: b.Cache.L1, TierL2: b.Cache.L2, TierOrigin: b.Cache.Origin} {
		want := float64(fake[tier]) / float64(keys)
		if fake[tier] == 0 || math.Abs(got-want) > 1e-9 {
			t.Errorf("batch %s ratio %v, want %v (%d of %d keys) and not 0", tier, got, want, fake[tier], keys)
		}
	}
	if sum.Cache.Classified != g.Cache.Classified+keys {
		t.Errorf("all reads classified %d, want %d gets + %d batch keys", sum.Cache.Classified, g.Cache.Classified, keys)
	}
	if !sum.ThresholdsOK || sum.Failed != 0 || sum.Consistency.StaleReads != 0 {
		var out strings.Builder
		sum.WriteText(&out)
		t.Errorf("a coherent fake failed:\n%s", out.String())
	}
}

// TestBatchProbeCatchesStaleItem: replicas whose writes do not evict the
// other replica's L1 serve old versions inside batches; with batch reads
// as the only reads, only probing each item of a batch can see them.
func TestBatchProbeCatchesStaleItem(t *testing.T) {
	_, urls := newFakeAPI(t, 2, 3, false)
	sc := &Scenario{
		Targets: urls, VUs: 2, Duration: Duration(20 * time.Second),
		Mix: Mix{Batch: 1, Update: 1}, BatchSize: 3, Setup: Setup{Products: 3},
		Probe:       ProbeSpec{Enabled: true, Grace: Duration(time.Nanosecond)},
		MaxRequests: 400,
		Thresholds:  map[string][]string{"stale_reads": {"count==0"}},
	}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Consistency; c.Reads < sum.Types["batch"].Requests || c.StaleReads == 0 || sum.ThresholdsOK {
		t.Errorf("consistency %+v after %d batches, thresholds ok=%v; want every item probed and stale ones caught",
			c, sum.Types["batch"].Requests, sum.ThresholdsOK)
	}
}

// TestBatchMissingIDFails: an id of the key space (never deleted) that a
// batch answers missing is a failed read filed under 404, as a single
// GET's 404 would be.
func TestBatchMissingIDFails(t *testing.T) {
	f, urls := newFakeAPI(t, 1, 20, true)
	f.dropLastOfBatch = true
	sc := &Scenario{
		Targets: urls, VUs: 2, Duration: Duration(20 * time.Second),
		Mix: Mix{Batch: 1}, BatchSize: 5, Setup: Setup{Products: 20}, MaxRequests: 50,
	}
	sum, err := Run(t.Context(), sc, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b := sum.Types["batch"]; b.Requests != 50 || b.Failed != 50 || sum.Failures.ByStatus["404"] != 50 ||
		sum.StatusCodes["200"] != 50 || sum.Checks.Fails != 50 {
		t.Errorf("batch %+v, failures %+v, codes %v, checks %+v; want all 50 failed under 404 with 200 answers",
			b, sum.Failures, sum.StatusCodes, sum.Checks)
	}
}

// TestCheckBatchAnswer checks the answer checks one by one: a missing id
// the ledger saw deleted is no failure, the same without the delete is a
// 404 failure, and a malformed answer fails its check only.
func TestCheckBatchAnswer(t *testing.T) {
	r := &runner{ids: []string{"a", "b", "c"}, ledger: NewLedger(), probe: NewProbe(0)}
	check := func(body string, ranks ...int) sample {
		var x sample
		r.checkBatch([]byte(body), ranks, time.Now(), &x)
		return x
	}
	answer := `{"items":[{"id":"a","version":3}],"missing":["b"]}`
	if x := check(answer, 0, 1); !x.failed || x.failCode != 404 || x.checkOK != 0 {
		t.Errorf("missing live id: %+v, want a failure under 404", x)
	}
	r.ledger.Write("b", 1, 0)
	r.ledger.Delete("b", time.Millisecond)
	if x := check(answer, 0, 1); x.failed || x.checks != 1 || x.checkOK != 1 {
		t.Errorf("missing deleted id: %+v, want a passed check", x)
	}
	for _, bad := range []struct {
		body  string
		ranks []int
	}{
		{`{"items":[{"id":"a","version":3}],"missing":[]}`, []int{0, 1}},                        // b left out
		{`{"items":[{"id":"b","version":1},{"id":"a","version":3}],"missing":[]}`, []int{0, 1}}, // out of order
		{`{"items":[{"id":"a","version":3},{"id":"c","version":1}],"missing":[]}`, []int{0}},    // c not asked
		{`{"items":[{"id":"a"}],"missing":[]}`, []int{0}},                                       // no version
		{`not json`, []int{0}},
	} {
		if x := check(bad.body, bad.ranks...); x.failed || x.checks != 1 || x.checkOK != 0 {
			t.Errorf("%s asked %v: %+v, want a failed check only", bad.body, bad.ranks, x)
		}
	}
}
