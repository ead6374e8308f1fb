package products

import (
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// relayBound is how soon after the acknowledgement the peers of a cut-off
// writer must serve its write: 50ms on a quiet machine (docs/design.md
// §3.15); the test asserts a looser bound, far below the sweeper's grace
// (an hour here), and that the relay, not the sweeper, delivered it.
const relayBound = 50 * time.Millisecond

// TestWriterCutOffRelaysThroughPostgres: replica a cannot reach Redis (a
// proxy cut its connections) and takes an update. b and c hold version 1
// in L1 and L2. The sweeper's grace is an hour, so only the relay can
// deliver: a NOTIFYs its outbox row's id, b or c claims it and sends it,
// and both serve version 2 soon after the acknowledgement. Without the
// NOTIFY, b and c keep serving version 1 and the test fails.
func TestWriterCutOffRelaysThroughPostgres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.outbox = OutboxOptions{SweepInterval: time.Hour, Grace: time.Hour}
	proxy := testenv.NewProxy(t, redisAddr(t), true)
	a := e.replicaOn("a", "tiered", testenv.RedisClient(t, testenv.RedisURLVia(t, proxy.Addr())))
	b, c := e.replica("b", "tiered"), e.replica("c", "tiered")
	for _, r := range []*replica{a, b, c} {
		waitFor(t, 5*time.Second, r.name+" listening", r.svc.outbox.listening.Load)
	}
	id, _ := a.create(t, "cut-off writer", 1)["id"].(string)
	for _, r := range []*replica{b, c} {
		r.warmL1(t, id)
	}
	proxy.SetUp(false)
	sent := time.Now()
	seen := watchVersion(id, 2, sent, b, c)
	acked := a.put(t, id, `{"name":"cut-off writer","price_cents":2}`)
	first := <-seen
	after := first - acked.Sub(sent)
	for _, r := range []*replica{b, c} {
		if v := r.version(t, id); v != 2 {
			t.Fatalf("%s serves version %d after the relay, want 2", r.name, v)
		}
	}
	// The relaying replica counts the row once its transaction committed,
	// just after the publish the readers saw.
	var relayed uint64
	waitFor(t, 5*time.Second, "the relay counted", func() bool {
		relayed = b.svc.outbox.relayed.Load() + c.svc.outbox.relayed.Load()
		return relayed > 0
	})
	resent := a.svc.outbox.resent.Load() + b.svc.outbox.resent.Load() + c.svc.outbox.resent.Load()
	t.Logf("b and c serve the new version %v after the acknowledgement (PUT took %v); relayed %d, re-sent by a sweeper %d",
		after.Round(time.Millisecond), acked.Sub(sent).Round(time.Millisecond), relayed, resent)
	if relayed != 1 || resent != 0 || a.svc.outbox.notified.Load() != 1 {
		t.Fatalf("relayed %d, re-sent %d, notified %d: want the one row relayed on a's NOTIFY", relayed, resent, a.svc.outbox.notified.Load())
	}
	if after > 2*time.Second {
		t.Fatalf("peers served the write %v after the acknowledgement, want well under a second (%v on a quiet machine)", after, relayBound)
	}
	if after > relayBound {
		t.Logf("over %v: a busy machine; the relay path was used (counted above)", relayBound)
	}
}
