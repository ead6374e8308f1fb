package products

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/tiercache"
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
	if err := r.store.pool.QueryRow(context.Background(), "SELECT count(*) FROM cache_outbox WHERE done_at IS NULL").Scan(&n); err != nil {
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
		r.warmL1(t, id)
	}

	proxy.SetUp(false)
	sent := time.Now()
	seen := watchVersion(id, 2, sent, b, c)
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
	first := <-seen
	t.Logf("b and c serve the new version %v after the acknowledgement; first %v after the PUT was sent, which took %v (bound %v = grace %v + sweep %v + lag %v)",
		time.Since(acked).Round(time.Millisecond), first.Round(time.Millisecond), acked.Sub(sent).Round(time.Millisecond),
		bound, shortOutbox.Grace, shortOutbox.SweepInterval, lagBound)
	if first > bound { // the row was due Grace after its transaction began
		t.Errorf("b and c first served version 2 %v after the PUT was sent, want at most %v", first, bound)
	}
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

// watchVersion polls product id through rs from now on and sends on the
// channel how long after since all of them first served version (or
// newer), or 10s if they never do.
func watchVersion(id string, version int64, since time.Time, rs ...*replica) <-chan time.Duration {
	ch := make(chan time.Duration, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for _, r := range rs {
			for !servesVersion(r.url+"/products/"+id, version) && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
		}
		ch <- time.Since(since)
	}()
	return ch
}

// servesVersion reports whether url answers with version or newer.
func servesVersion(url string, version int64) bool {
	code, _, body, err := fetch(url)
	if err != nil || code != http.StatusOK {
		return false
	}
	var p struct{ Version int64 }
	return json.Unmarshal(body, &p) == nil && p.Version >= version
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
			if err := rs[0].store.pool.QueryRow(context.Background(), "SELECT count(*) FROM cache_outbox WHERE done_at IS NULL").Scan(&n); err == nil {
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
	var marked, resent, errs uint64
	counted := func() uint64 {
		marked, resent, errs = 0, 0, 0
		for _, r := range rs {
			marked, resent, errs = marked+r.svc.outbox.marked.Load(), resent+r.svc.outbox.resent.Load(), errs+r.svc.outbox.errs.Load()
		}
		return marked + resent
	}
	// A deletion is counted after its statement returns, so the rows can be
	// gone a moment before the last count lands: wait for both.
	waitFor(t, sweepBound(shortOutbox), "the outbox to empty and every deletion to be counted", func() bool {
		return rs[0].outboxRows(t) == 0 && counted() >= total
	})
	counted()
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

// productionTimeouts restores tiercache's default Redis timeouts, which
// the other tests raise.
func productionTimeouts(o *tiercache.Options) { o.L2Timeout, o.LeaseWait = 0, 0 }

// acked is a write's acknowledged version and when it was answered.
type acked struct {
	version int64
	at      time.Time
}

// observed is a read: when it began, through which replica, and the
// version it returned.
type observed struct {
	product int
	replica string
	start   time.Time
	version int64
}

// TestRedisRestartUnderLoad: Redis is killed and restarted while writers
// update products through random replicas and readers read them through
// random replicas. Every read that begins more than the bound after a
// write's acknowledgement returns that write's version or newer, where the
// bound runs from the later of the acknowledgement and Redis's restart for
// a write acknowledged while Redis was down; and no acknowledged write is
// lost: at the end every replica serves every product's last version.
func TestRedisRestartUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.outbox = shortOutbox
	rs := testenv.NewRedisServer(t)
	rs.Start()
	var reps []*replica
	for _, name := range []string{"a", "b", "c"} {
		reps = append(reps, e.replicaOn(name, "tiered", testenv.RedisClient(t, rs.URL()), productionTimeouts))
	}
	const products, writers, readers = 16, 3, 6
	ids := make([]uuid.UUID, products)
	for i := range ids {
		_, id, err := reps[i%3].svc.Create(context.Background(), Input{Name: fmt.Sprintf("restart %d", i), PriceCents: 1})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		ids[i] = id
	}

	var (
		mu     sync.Mutex
		writes = make([][]acked, products)
		reads  []observed
		errs   []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, r := (w*7+i*3)%products, reps[(w+i)%3]
				e, err := r.svc.Update(context.Background(), ids[p], Input{Name: "restart", PriceCents: int64(i)}, nil)
				if err != nil {
					fail("write %d through %s: %v", p, r.name, err)
					return
				}
				now := time.Now()
				mu.Lock()
				writes[p] = append(writes[p], acked{e.Version, now})
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	for rd := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []observed
			defer func() {
				mu.Lock()
				reads = append(reads, mine...)
				mu.Unlock()
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, r := (rd*5+i)%products, reps[(rd+i)%3]
				start := time.Now()
				e, _, err := r.svc.Product(context.Background(), ids[p])
				if err != nil {
					fail("read %d through %s: %v", p, r.name, err)
					return
				}
				mine = append(mine, observed{p, r.name, start, e.Version})
				time.Sleep(time.Millisecond)
			}
		}()
	}

	time.Sleep(time.Second)
	killed := time.Now()
	rs.Stop()
	time.Sleep(time.Second)
	rs.Start()
	up := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	for _, msg := range errs {
		t.Error(msg)
	}

	bound := sweepBound(shortOutbox)
	checkReads(t, writes, reads, killed, up, bound)
	var resent uint64
	for _, r := range reps {
		resent += r.svc.outbox.resent.Load()
	}
	t.Logf("outbox rows re-sent by sweepers: %d", resent)

	// Nothing acknowledged is lost: every replica ends on the database's
	// version, which is the last acknowledged one.
	for p, id := range ids {
		latest, err := reps[0].store.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("get %d: %v", p, err)
		}
		var maxAcked int64
		for _, w := range writes[p] {
			maxAcked = max(maxAcked, w.version)
		}
		if latest.Version != maxAcked {
			t.Errorf("product %d: the database has version %d, the last acknowledged is %d", p, latest.Version, maxAcked)
		}
		for _, r := range reps {
			if e, _, err := r.svc.Product(context.Background(), id); err != nil || e.Version != latest.Version {
				t.Errorf("product %d through %s at the end: got version %d (%v), want %d", p, r.name, e.Version, err, latest.Version)
			}
		}
	}
}

// checkReads fails t for every read that returned a version older than one
// acknowledged more than bound before the read began (see staleReads), and
// logs the figures.
func checkReads(t *testing.T, writes [][]acked, reads []observed, killed, up time.Time, bound time.Duration) {
	t.Helper()
	st := staleReads(writes, reads, killed, up, bound)
	for i, msg := range st.violations {
		if i == 10 {
			t.Errorf("... and %d more", len(st.violations)-i)
			break
		}
		t.Error(msg)
	}
	writesN := 0
	for _, ws := range writes {
		writesN += len(ws)
	}
	t.Logf("%d writes, %d reads; %d older than the bound %v; worst staleness %v (%v among reads after Redis came back); Redis down %v",
		writesN, len(reads), len(st.violations), bound, st.worst.Round(time.Millisecond), st.worstAfterUp.Round(time.Millisecond), up.Sub(killed).Round(time.Millisecond))
}

// staleness is what staleReads found.
type staleness struct {
	violations          []string      // reads older than the bound
	worst, worstAfterUp time.Duration // the largest staleness, overall and among reads after up
}

// staleReads measures each read's staleness: how long before the read
// began the oldest version newer than the one it returned was
// acknowledged, counting, for a write acknowledged while Redis was down
// (between killed and up), from up instead. A read whose staleness exceeds
// bound is a violation.
func staleReads(writes [][]acked, reads []observed, killed, up time.Time, bound time.Duration) staleness {
	since := func(w acked) time.Time {
		if w.at.After(killed) && w.at.Before(up) {
			return up
		}
		return w.at
	}
	var st staleness
	for _, rd := range reads {
		var late time.Duration
		var missed acked
		for _, w := range writes[rd.product] {
			if w.version > rd.version && since(w).Before(rd.start) && rd.start.Sub(since(w)) > late {
				late, missed = rd.start.Sub(since(w)), w
			}
		}
		st.worst = max(st.worst, late)
		if rd.start.After(up) {
			st.worstAfterUp = max(st.worstAfterUp, late)
		}
		if late > bound {
			st.violations = append(st.violations, fmt.Sprintf(
				"read of product %d through %s began %v after version %d was acknowledged (at %v after the kill; read %v after Redis came back), got version %d",
				rd.product, rd.replica, late.Round(time.Millisecond), missed.version, missed.at.Sub(killed).Round(time.Millisecond),
				rd.start.Sub(up).Round(time.Millisecond), rd.version))
		}
	}
	return st
}

// TestStaleReads checks the judge of TestRedisRestartUnderLoad on made-up
// histories: it must flag a read that missed a write acknowledged long
// enough before, and only that.
func TestStaleReads(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	killed, up, bound := at(1000), at(2000), 300*time.Millisecond
	writes := [][]acked{{{1, at(0)}, {2, at(500)}, {3, at(1500)}}}
	tests := []struct {
		name      string
		read      observed
		violation bool
		late      time.Duration
	}{
		{"the latest version", observed{0, "a", at(3000), 3}, false, 0},
		{"old but within the bound", observed{0, "a", at(700), 1}, false, 200 * time.Millisecond},
		{"old beyond the bound", observed{0, "a", at(900), 1}, true, 400 * time.Millisecond},
		{"missed an outage write, counted from up, within", observed{0, "b", at(2200), 2}, false, 200 * time.Millisecond},
		{"missed an outage write, counted from up, beyond", observed{0, "b", at(2400), 2}, true, 400 * time.Millisecond},
		{"missed two, the older counts", observed{0, "c", at(2400), 1}, true, 1900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := staleReads(writes, []observed{tt.read}, killed, up, bound)
			if got := len(st.violations) == 1; got != tt.violation {
				t.Errorf("got violations %q, want one: %v", st.violations, tt.violation)
			}
			if st.worst != tt.late {
				t.Errorf("got staleness %v, want %v", st.worst, tt.late)
			}
		})
	}
}

// TestOutboxOnlyWithRedis: modes that use Redis record each write's
// invalidation (and the writer's mark deletes it); local and none, which
// have nothing to deliver late, record none.
func TestOutboxOnlyWithRedis(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		mode   string
		record bool
	}{{"tiered", true}, {"redis", true}, {"local", false}, {"none", false}} {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			e := manualEnv(t)
			r := e.replica("a", tt.mode)
			id, _ := r.create(t, "recorded?", 1)["id"].(string)
			r.put(t, id, `{"name":"recorded?","price_cents":2}`)
			want := int64(0)
			if tt.record {
				want = 2
			}
			if got := r.outboxRows(t); got != want {
				t.Fatalf("got %d outbox rows after 2 writes, want %d", got, want)
			}
			if tt.record && len(r.svc.outbox.marks) != 2 {
				t.Fatalf("got %d marks queued, want 2: Redis took both invalidations", len(r.svc.outbox.marks))
			}
		})
	}
}

// TestOutboxStopWritesQueuedMarks: marks still queued when the outbox
// stops are written before RunOutbox returns, so a clean shutdown leaves
// no delivered invalidation for the sweepers to re-send.
func TestOutboxStopWritesQueuedMarks(t *testing.T) {
	t.Parallel()
	e := manualEnv(t)
	a := e.replica("a", "tiered")
	for i := range 5 {
		a.create(t, fmt.Sprintf("queued %d", i), 1)
	}
	if n := len(a.svc.outbox.marks); n != 5 {
		t.Fatalf("got %d marks queued, want 5", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.svc.RunOutbox(ctx, OutboxOptions{})
	if n := a.outboxRows(t); n != 0 {
		t.Fatalf("got %d outbox rows after the outbox stopped, want 0", n)
	}
	if got := a.svc.outbox.marked.Load(); got != 5 {
		t.Fatalf("got %d rows marked, want 5", got)
	}
}
