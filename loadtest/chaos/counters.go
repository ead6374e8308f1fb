package chaos

import (
	"context"
	"net/http"
	"time"

	"github.com/tiercache/productcache/loadtest"
)

// The replicas' counters a phase reads from their /metrics.
const (
	// unknownOutcomeMetric counts the writes a replica failed because
	// their database connection was lost after COMMIT was sent.
	unknownOutcomeMetric = "productsd_db_write_outcome_unknown_total"
	// notReplicatedMetric counts the invalidations deferred because no
	// Redis replica acknowledged them (WAIT); replaysMetric the outbox
	// replays after a master change.
	notReplicatedMetric = "tiercache_not_replicated_total"
	replaysMetric       = "productsd_outbox_replays_total"
)

// counterReadings is, by replica URL, each counter read on the replica
// (summed over its labels). A replica that did not answer is missing.
type counterReadings map[string]map[string]float64

// readCounters reads names on every replica of the phase, one /metrics
// request each.
func (e *env) readCounters(ctx context.Context, names ...string) counterReadings {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	out := counterReadings{}
	for _, u := range e.urls {
		n, ok := loadtest.TargetCounters(ctx, client, u, names...)
		if !ok {
			e.cfg.Logf("chaos: %s/metrics did not answer", u)
			continue
		}
		out[u] = n
	}
	return out
}

// sum is counter summed over the replicas.
func (r counterReadings) sum(counter string) int64 {
	var s float64
	for _, n := range r {
		s += n[counter]
	}
	return int64(s)
}

// delta is how much counter grew since before, summed over the replicas;
// a replica restarted meanwhile, or that did not answer before, counts
// from zero.
func (r counterReadings) delta(before counterReadings, counter string) int64 {
	var d float64
	for u, n := range r {
		if v, b := n[counter], before[u][counter]; v >= b {
			d += v - b
		} else {
			d += v
		}
	}
	return int64(d)
}
