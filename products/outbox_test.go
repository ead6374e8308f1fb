package products

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// shortOutbox is the outbox timing of these tests: the bound they check is
// Grace + SweepInterval + lagBound.
var shortOutbox = OutboxOptions{SweepInterval: 100 * time.Millisecond, Grace: 200 * time.Millisecond}

// sweepBound is how long after its acknowledgement an invalidation the
// writer could not deliver may take to reach every replica.
func sweepBound(o OutboxOptions) time.Duration { return o.Grace + o.SweepInterval + lagBound }

// redisAddr is the host:port of the test Redis.
func redisAddr(t testing.TB) string {
	t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	return opt.Addr
}

// metricValue returns the value of the unlabelled metric name in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// outboxRows counts the rows of cache_outbox.
func (r *replica) outboxRows(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := r.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM cache_outbox").Scan(&n); err != nil {
		t.Fatalf("count outbox: %v", err)
	}
	return n
}

// put updates product id through r and returns when it was answered.
func (r *replica) put(t testing.TB, id, body string) time.Time {
	t.Helper()
	wantStatus(t, do(t, http.MethodPut, r.url+"/products/"+id, body), http.StatusOK)
	return time.Now()
}

// TestWriterDiesWithUnsentInvalidation: replica a cannot reach Redis (a
// proxy cut its connections), takes an update and answers it, and dies
// before its cache could deliver the invalidation: its outbox stops, and
// its cache is closed while Redis is still unreachable, so the final retry
// of Close fails and the queued invalidation dies with it. Replicas b and
// c held the old version in L1 and L2 (without the outbox they would serve
// it until the L1 max age, then from L2 until the L2 TTL); a sweeper re-sends
// the invalidation and both serve the new version within the bound.
func TestWriterDiesWithUnsentInvalidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.outbox = shortOutbox
	proxy := testenv.NewProxy(t, redisAddr(t), true)
	a := e.replicaOn("a", "tiered", testenv.RedisClient(t, testenv.RedisURLVia(t, proxy.Addr())))
	b, c := e.replica("b", "tiered"), e.replica("c", "tiered")

	id, _ := a.create(t, "doomed writer", 1)["id"].(string)
	for _, r := range []*replica{b, c} {
		r.version(t, id)
		if got := do(t, http.MethodGet, r.url+"/products/"+id, "").Header.Get("Cache-Status"); got != wantL1Hit {
			t.Fatalf("%s: got Cache-Status %q, want an L1 hit", r.name, got)
		}
	}

	proxy.SetUp(false)
	sent := time.Now()
	acked := a.put(t, id, `{"name":"doomed writer","price_cents":2}`)
	if st := a.cache.Stats(); st.RetryQueued == 0 {
		t.Fatalf("a's invalidation was not queued for retry (stats %+v): Redis was reachable", st)
	}
	// a dies: nothing it still holds in memory is ever sent. (Its
	// Close tries the Redis part once more, through the cut proxy, which
	// takes go-redis's retries: it runs beside the polling so that the
	// time measured is the sweeper's, not Close's.)
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		a.stopOutbox()
		_ = a.cache.Close()
	}()
	bound := sweepBound(shortOutbox)
	for _, r := range []*replica{b, c} {
		waitFor(t, bound-time.Since(acked), r.name+" to serve version 2", func() bool { return r.version(t, id) == 2 })
	}
	// The PUT itself takes as long as a's Redis client retries; a sweeper
	// may re-send the committed row before it is answered.
	t.Logf("b and c serve the new version %v after the acknowledgement (PUT took %v; bound %v = grace %v + sweep %v + lag %v)",
		time.Since(acked).Round(time.Millisecond), acked.Sub(sent).Round(time.Millisecond), bound, shortOutbox.Grace, shortOutbox.SweepInterval, lagBound)
	<-dead
	for _, r := range []*replica{b, c} {
		if v := r.version(t, id); v != 2 {
			t.Fatalf("%s after a died: got version %d, want 2", r.name, v)
		}
	}
	resent := metricValue(t, b.reg, "productsd_outbox_resent_total") + metricValue(t, c.reg, "productsd_outbox_resent_total")
	if resent < 1 {
		t.Fatalf("got %v rows re-sent by b and c, want at least 1", resent)
	}
	waitFor(t, bound, "the outbox to empty", func() bool { return b.outboxRows(t) == 0 })
}

// manualEnv is an env whose replicas run no outbox loops: the test drives
// sweeps and marks itself, and sets hooks without racing a loop.
func manualEnv(t *testing.T) *env {
	e := newEnv(t)
	e.manualOutbox = true
	return e
}

// insertDue adds an outbox row for product key "product:<name>" that is a
// minute old, as a writer that died would have left it.
func (r *replica) insertDue(t testing.TB, name string) int64 {
	t.Helper()
	var id int64
	err := r.store.pool.QueryRow(context.Background(),
		`INSERT INTO cache_outbox (keys, groups, created_at) VALUES ($1, $2, now() - interval '1 minute') RETURNING id`,
		[]string{"product:" + name}, []string{ListGroup}).Scan(&id)
	if err != nil {
		t.Fatalf("insert outbox row: %v", err)
	}
	return id
}

// claimHold makes r's next sweep signal the ids it claimed on claimed and
// then wait for release, holding their locks.
func (r *replica) claimHold(claimed chan<- []int64, release <-chan struct{}) {
	r.svc.outbox.afterClaim = func(ids []int64) {
		claimed <- ids
		<-release
	}
}

// TestSweepersSkipLockedRows: while one sweeper holds a row it claimed
// (its hook waits inside the claim transaction), another sweeper's claim
// skips it and re-sends nothing; the first re-sends it once and deletes
// it.
func TestSweepersSkipLockedRows(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	a, b := e.replica("a", "tiered"), e.replica("b", "tiered")
	row := a.insertDue(t, "locked")
	claimed, release := make(chan []int64, 1), make(chan struct{})
	a.claimHold(claimed, release)
	b.svc.outbox.afterClaim = func(ids []int64) { t.Errorf("b claimed %v, which a holds", ids) }

	type result struct {
		n   int
		err error
	}
	aDone := make(chan result, 1)
	go func() {
		n, err := a.svc.outbox.sweepBatch(context.Background(), 0, 10)
		aDone <- result{n, err}
	}()
	if ids := <-claimed; len(ids) != 1 || ids[0] != row {
		t.Fatalf("a claimed %v, want [%d]", ids, row)
	}
	n, err := b.svc.outbox.sweepBatch(context.Background(), 0, 10)
	if err != nil || n != 0 {
		t.Fatalf("b's sweep while a holds the row: got %d re-sent, err %v; want 0, nil", n, err)
	}
	close(release)
	if r := <-aDone; r.err != nil || r.n != 1 {
		t.Fatalf("a's sweep: got %d re-sent, err %v; want 1, nil", r.n, r.err)
	}
	if n := a.outboxRows(t); n != 0 {
		t.Fatalf("got %d outbox rows after the sweep, want 0", n)
	}
	if got := a.svc.outbox.resent.Load() + b.svc.outbox.resent.Load(); got != 1 {
		t.Fatalf("got %d re-sends, want 1", got)
	}
}

// TestSweeperRacesWritersMark: a write's row is claimed by a sweeper just
// as its writer marks it done, in both orders. The mark never waits for
// the sweeper (it skips the locked row), the row is deleted exactly once,
// and nothing fails.
func TestSweeperRacesWritersMark(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	a := e.replica("a", "tiered")
	o := a.svc.outbox
	writeAndTakeMark := func(name string) int64 {
		a.create(t, name, 1)
		select {
		case id := <-o.marks: // the writer's mark, not yet written
			return id
		default:
			t.Fatal("the write queued no mark: its invalidation did not go through")
			return 0
		}
	}

	t.Run("sweeper first", func(t *testing.T) {
		row := writeAndTakeMark("sweeper first")
		claimed, release := make(chan []int64, 1), make(chan struct{})
		a.claimHold(claimed, release)
		swept := make(chan int, 1)
		go func() {
			n, err := o.sweepBatch(context.Background(), 0, 10)
			if err != nil {
				t.Errorf("sweep: %v", err)
			}
			swept <- n
		}()
		if ids := <-claimed; len(ids) != 1 || ids[0] != row {
			t.Fatalf("sweeper claimed %v, want [%d]", ids, row)
		}
		// The mark runs while the sweeper holds the row; a mark that
		// waited for the lock would hit this deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if n := o.markDone(ctx, []int64{row}); n != 0 {
			t.Fatalf("mark of a row the sweeper holds deleted %d rows, want 0", n)
		}
		close(release)
		if n := <-swept; n != 1 {
			t.Fatalf("sweeper re-sent %d rows, want 1", n)
		}
	})
	o.afterClaim = nil

	t.Run("mark first", func(t *testing.T) {
		row := writeAndTakeMark("mark first")
		if n := o.markDone(context.Background(), []int64{row}); n != 1 {
			t.Fatalf("mark deleted %d rows, want 1", n)
		}
		if n, err := o.sweepBatch(context.Background(), 0, 10); err != nil || n != 0 {
			t.Fatalf("sweep after the mark: got %d, %v; want 0, nil", n, err)
		}
	})

	if n := a.outboxRows(t); n != 0 {
		t.Fatalf("got %d outbox rows, want 0", n)
	}
	if got := o.marked.Load() + o.resent.Load(); got != 2 {
		t.Fatalf("got %d deletions (marked %d, re-sent %d) for 2 rows, want 2", got, o.marked.Load(), o.resent.Load())
	}
	if n := o.errs.Load(); n != 0 {
		t.Fatalf("got %d outbox errors, want 0", n)
	}
}

// TestOutboxStaysBounded: thousands of writes through three replicas leave
// no row behind: every row is deleted exactly once, by its writer's mark
// or by a sweeper, and the table does not grow with the load. (Not
// parallel: it loads the machine, and the parallel tests would pay.)
func TestOutboxStaysBounded(t *testing.T) {
	e := newEnv(t)
	e.outbox = shortOutbox
	rs := []*replica{e.replica("a", "tiered"), e.replica("b", "tiered"), e.replica("c", "tiered")}
	const writers, perWriter = 8, 200
	stop := make(chan struct{})
	var maxRows int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var n int64
			if err := rs[0].store.pool.QueryRow(context.Background(), "SELECT count(*) FROM cache_outbox").Scan(&n); err == nil {
				maxRows = max(maxRows, n)
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := rs[w%len(rs)].svc
			for i := range perWriter {
				in := Input{Name: fmt.Sprintf("load %d-%d", w, i), PriceCents: int64(i)}
				_, id, err := svc.Create(context.Background(), in)
				if err == nil && i%2 == 0 {
					_, err = svc.Update(context.Background(), id, in, nil)
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	total := uint64(writers * perWriter * 3 / 2)
	waitFor(t, sweepBound(shortOutbox), "the outbox to empty", func() bool { return rs[0].outboxRows(t) == 0 })
	var marked, resent, errs uint64
	for _, r := range rs {
		marked, resent, errs = marked+r.svc.outbox.marked.Load(), resent+r.svc.outbox.resent.Load(), errs+r.svc.outbox.errs.Load()
	}
	t.Logf("%d writes in %v; at most %d outbox rows seen; deleted by marks %d, by sweeps %d; sweep errors %d (a busy Redis)",
		total, elapsed.Round(time.Millisecond), maxRows, marked, resent, errs)
	if marked+resent != total {
		t.Fatalf("got %d rows deleted (marked %d, re-sent %d) for %d writes, want each deleted once", marked+resent, marked, resent, total)
	}
	if maxRows > int64(total)/4 {
		t.Fatalf("the outbox held up to %d rows during %d writes: it grows with the load", maxRows, total)
	}
}

// TestOutboxMetrics: a row nobody delivered shows in the pending gauges,
// and its re-send by the next sweep in the counter, with the gauges back
// at zero.
func TestOutboxMetrics(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	a := e.replica("a", "tiered")
	a.insertDue(t, "undelivered")
	o := a.svc.outbox
	o.refreshStats(context.Background())
	if got := metricValue(t, a.reg, "productsd_outbox_pending"); got != 1 {
		t.Fatalf("productsd_outbox_pending: got %v, want 1", got)
	}
	if got := metricValue(t, a.reg, "productsd_outbox_oldest_pending_age_seconds"); got < 59 || got > 600 {
		t.Fatalf("productsd_outbox_oldest_pending_age_seconds: got %v, want about 60", got)
	}
	o.sweep(context.Background(), OutboxOptions{Grace: time.Second, BatchSize: 10})
	for name, want := range map[string]float64{
		"productsd_outbox_pending":                    0,
		"productsd_outbox_oldest_pending_age_seconds": 0,
		"productsd_outbox_resent_total":               1,
		"productsd_outbox_sweep_errors_total":         0,
	} {
		if got := metricValue(t, a.reg, name); got != want {
			t.Errorf("%s after the sweep: got %v, want %v", name, got, want)
		}
	}
}
