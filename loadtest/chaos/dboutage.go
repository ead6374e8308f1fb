package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tiercache/productcache/loadtest"
)

// dbOutageWrites is how many of the most read products the db-outage phase
// updates just before the database goes away: their L1 and L2 entries are
// gone, so reads of them need the database (or a fail-safe copy).
const dbOutageWrites = 20

// dbOutageAllowance is the stale-if-error the phase's opted-in reads send.
const dbOutageAllowance = 60 * time.Second

// dbOutage closes the database to new connections, updates the most read
// products through the connections the replicas already hold (so that no
// read refills them before the outage), terminates the replicas' backends
// until `until` (since the run's start), and opens the database again.
func (e *env) dbOutage(ctx context.Context, c clock, until time.Duration) error {
	if err := e.allowConnections(ctx, false); err != nil {
		return err
	}
	defer func() { _ = e.allowConnections(context.WithoutCancel(ctx), true) }()
	e.updateHot(ctx, c)
	var err error
	c.every(c.since(), until, 500*time.Millisecond, func() { // a connection may have been opened before the ALTER
		if _, terr := e.terminateBackends(ctx); terr != nil && err == nil {
			err = terr
		}
	})
	c.at(until)
	return err
}

// allowConnections opens or closes the phase database to new connections.
func (e *env) allowConnections(ctx context.Context, allow bool) error {
	conn, err := pgx.Connect(ctx, e.baseDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgx.Identifier{e.dbName}.Sanitize(), allow))
	return err
}

// updateHot updates the dbOutageWrites most read products through the
// first replica and tells the probe of each update acknowledged, so that a
// read of the version before is found older: stale if unlabelled, counted
// apart if labelled. An update that needed a new connection fails: the
// database is closed already.
func (e *env) updateHot(ctx context.Context, c clock) {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	base := e.cl.URLs()[0]
	acked := 0
	var last error
	for i, id := range e.ids[:min(dbOutageWrites, len(e.ids))] {
		v, err := putProduct(ctx, client, base, id, i)
		if err != nil {
			last = err
			continue
		}
		acked++
		if c.probe != nil {
			c.probe.Write(id, v, c.since())
		}
	}
	e.cfg.Logf("chaos: db-outage: %d of %d hot products updated as the database closed (last error: %v)", acked, dbOutageWrites, last)
}

// putProduct updates id and returns the version the API acknowledged.
func putProduct(ctx context.Context, client *http.Client, base, id string, n int) (int64, error) {
	body := fmt.Sprintf(`{"name":"chaos db-outage %d","description":"written before the outage","price_cents":%d}`, n, 100+n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/products/"+id, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var p struct {
		Version int64 `json:"version"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &p) != nil || p.Version == 0 {
		return 0, fmt.Errorf("update %s before the outage: %d %s", id, resp.StatusCode, b)
	}
	return p.Version, nil
}

// failSafeFigures copies a phase's fail-safe figures into its result.
func (r *PhaseResult) failSafeFigures(sum *loadtest.Summary) {
	f := sum.FailSafe
	r.OptInReads, r.OptInFailed = f.OptIn, f.OptInFailed
	r.OtherReads, r.OtherFailed = f.OtherReads, f.OtherFailed
	r.LabelledStale, r.UnrequestedStale, r.OverAllowance = f.Served, f.Unrequested, f.OverAllowance
	r.MaxStaleAgeS = f.MaxAgeS
	r.LabelledOld = sum.Consistency.LabelledStale
}
