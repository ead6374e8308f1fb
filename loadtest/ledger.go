package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Ledger records every write the API acknowledged during a run: for each
// id the highest acknowledged version and whether it was deleted. After
// the run [Ledger.Verify] reads every id back.
type Ledger struct {
	mu     sync.Mutex
	acks   map[string]ack
	writes atomic.Int64
}

type ack struct {
	version int64
	deleted bool
	// unanswered: a delete was sent and no answer came (no response, or a
	// 5xx): it may have committed, so a 404 is no loss.
	unanswered bool
	at         time.Duration // since the run's start, of the latest acknowledgement
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{acks: map[string]ack{}} }

// Write records that a create or update of id was acknowledged at version.
func (l *Ledger) Write(id string, version int64, at time.Duration) {
	l.writes.Add(1)
	l.mu.Lock()
	a, ok := l.acks[id]
	if !ok || !a.deleted && version > a.version {
		l.acks[id] = ack{version: version, at: at}
	}
	l.mu.Unlock()
}

// Delete records that a delete of id was acknowledged.
func (l *Ledger) Delete(id string, at time.Duration) {
	l.writes.Add(1)
	l.mu.Lock()
	a := l.acks[id]
	l.acks[id] = ack{version: a.version, deleted: true, at: at}
	l.mu.Unlock()
}

// DeleteUnanswered records that a delete of id was sent and no answer came
// (the connection failed, or a 5xx): a replica killed between its commit
// and its answer leaves a delete that happened without an acknowledgement,
// so from now on id may read 404 without a write being lost.
func (l *Ledger) DeleteUnanswered(id string) {
	l.mu.Lock()
	if a, ok := l.acks[id]; ok {
		a.unanswered = true
		l.acks[id] = a
	}
	l.mu.Unlock()
}

// MayBeGone reports whether id may have been deleted: an acknowledged
// delete, or one that went unanswered. Any other id the run reads exists.
func (l *Ledger) MayBeGone(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.acks[id]
	return a.deleted || a.unanswered
}

// LostWrites is the verdict on the acknowledged writes of a run: each id
// was read through every target (and from the database, when the check
// had one) until it showed its latest acknowledged state or the settle
// window ended. Lost is the only figure that must be zero: an id whose
// acknowledged version was missing, older, or whose acknowledged delete
// was undone, wherever it was read.
type LostWrites struct {
	Enabled  bool  `json:"enabled"`
	IDs      int   `json:"ids"`
	Writes   int64 `json:"acknowledged_writes"`
	Reads    int64 `json:"reads"`
	Database bool  `json:"database"` // the database was read too
	// Lost counts ids wrong somewhere at the end of the settle window;
	// Missing (404 for a live id), Backwards (an older version) and
	// Reappeared (a deleted id answered) count the wrong reads, one per
	// id and place read.
	Lost    int `json:"lost"`
	Missing int `json:"missing"`
	// UnansweredDeletes counts ids read 404 after a delete of them went
	// unanswered: not lost, the delete may have happened.
	UnansweredDeletes int `json:"unanswered_deletes"`
	Backwards         int `json:"backwards"`
	Reappeared        int `json:"reappeared"`
	// Unverified counts reads that failed (no answer, 5xx) until the end of
	// the settle window: not shown lost, not shown kept either.
	Unverified int `json:"unverified"`
	// SettleMs is the longest an id took, from the start of the check, to
	// read right on a target; Late counts the reads that were wrong at
	// first and right later.
	SettleMs float64     `json:"settle_ms"`
	Late     int         `json:"late"`
	Examples []LostWrite `json:"examples,omitempty"`
}

// LostWrite is one id found wrong.
type LostWrite struct {
	ID      string  `json:"id"`
	Where   string  `json:"where"` // a target, or "database"
	Acked   int64   `json:"acked_version"`
	Deleted bool    `json:"acked_delete"`
	AckMs   float64 `json:"ack_ms"` // when the write was acknowledged, since the start
	Seen    string  `json:"seen"`   // what was read instead
}

const maxExamples = 20

// verifyUserAgent marks the reads of the lost-write check, which come
// after the run's figures were taken.
const verifyUserAgent = "loadtest-lost-write-check"

// VerifyOptions say where and how long Verify reads.
type VerifyOptions struct {
	Targets []string
	// Stored, when set, is read as well: the database is where a write
	// is durable, the targets are where clients see it.
	Stored StoredVersions
	// Settle is how long a read may keep being wrong before it counts:
	// a write is visible everywhere within the invalidation lag, or within
	// the outbox sweep after a Redis outage. Default 2s.
	Settle time.Duration
	// Concurrency bounds the reads in flight; default 16.
	Concurrency int
}

// outcome of reading one id once.
type outcome int

const (
	readOK outcome = iota
	readMissing
	readBackwards
	readReappeared
	readFailed
)

// Verify reads every id of the ledger through every target, and from the
// database when opt.DatabaseURL is set, and reports what is lost.
func (l *Ledger) Verify(ctx context.Context, client *http.Client, opt VerifyOptions) (LostWrites, error) {
	if opt.Settle <= 0 {
		opt.Settle = 2 * time.Second
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 16
	}
	l.mu.Lock()
	ids := make([]string, 0, len(l.acks))
	for id := range l.acks {
		ids = append(ids, id)
	}
	acks := l.acks
	l.mu.Unlock()
	sort.Strings(ids)
	res := LostWrites{Enabled: true, IDs: len(ids), Writes: l.writes.Load()}
	var mu sync.Mutex // guards res and lost below
	lost := map[string]bool{}
	start := time.Now()
	deadline := start.Add(opt.Settle)
	record := func(id, where string, a ack, o outcome, seen string, late bool) {
		mu.Lock()
		defer mu.Unlock()
		if late {
			res.Late++
		}
		if o == readMissing && a.unanswered {
			res.UnansweredDeletes++
			return
		}
		if o == readOK {
			res.SettleMs = max(res.SettleMs, ms(time.Since(start)))
			return
		}
		switch o {
		case readMissing:
			res.Missing++
		case readBackwards:
			res.Backwards++
		case readReappeared:
			res.Reappeared++
		case readFailed:
			res.Unverified++
			return
		}
		if !lost[id] {
			lost[id] = true
			res.Lost++
		}
		if len(res.Examples) < maxExamples {
			res.Examples = append(res.Examples, LostWrite{ID: id, Where: where, Acked: a.version, Deleted: a.deleted, AckMs: ms(a.at), Seen: seen})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Concurrency)
	var reads atomic.Int64
	for _, id := range ids {
		for _, target := range opt.Targets {
			g.Go(func() error {
				a := acks[id]
				late := false
				for {
					reads.Add(1)
					o, seen := readBack(gctx, client, target, id, a)
					if o == readOK || time.Now().After(deadline) || gctx.Err() != nil {
						record(id, target, a, o, seen, late && o == readOK)
						return nil
					}
					late = true
					select {
					case <-gctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
		}
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Reads = reads.Load()
	if opt.Stored != nil {
		res.Database = true
		if err := verifyDB(ctx, opt.Stored, ids, acks, record); err != nil {
			return res, err
		}
	}
	sort.Slice(res.Examples, func(i, j int) bool { return res.Examples[i].ID < res.Examples[j].ID })
	return res, ctx.Err()
}

// readBack reads id through target once and compares it with a.
func readBack(ctx context.Context, client *http.Client, target, id string, a ack) (outcome, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/products/"+id, nil)
	if err != nil {
		return readFailed, err.Error()
	}
	req.Header.Set("User-Agent", verifyUserAgent)
	resp, err := client.Do(req)
	if err != nil {
		return readFailed, ClassifyError(err).String()
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return readFailed, ClassifyError(err).String()
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && a.deleted:
		return readOK, ""
	case resp.StatusCode == http.StatusNotFound:
		return readMissing, "404"
	case resp.StatusCode != http.StatusOK:
		return readFailed, fmt.Sprint(resp.StatusCode)
	case a.deleted:
		v, _ := versionOf(resp, body)
		return readReappeared, fmt.Sprintf("200 version %d", v)
	}
	v, ok := versionOf(resp, body)
	switch {
	case !ok:
		return readFailed, "200 without a version"
	case v < a.version:
		return readBackwards, fmt.Sprintf("version %d", v)
	}
	return readOK, ""
}

// StoredVersions reads the version the database holds for each id; an id
// with no row is absent from the map. The engine speaks only HTTP; the
// commands that know the database supply it (loadtest/meter.StoredVersions).
type StoredVersions func(ctx context.Context, ids []string) (map[string]int64, error)

// verifyDB compares the acknowledged ids with what stored reads.
func verifyDB(ctx context.Context, stored StoredVersions, ids []string, acks map[string]ack,
	record func(id, where string, a ack, o outcome, seen string, late bool)) error {
	found, err := stored(ctx, ids)
	if err != nil {
		return fmt.Errorf("loadtest: lost-write check: %w", err)
	}
	for _, id := range ids {
		a := acks[id]
		v, ok := found[id]
		switch {
		case a.deleted && ok:
			record(id, "database", a, readReappeared, fmt.Sprintf("row at version %d", v), false)
		case a.deleted:
			record(id, "database", a, readOK, "", false)
		case !ok:
			record(id, "database", a, readMissing, "no row", false)
		case v < a.version:
			record(id, "database", a, readBackwards, fmt.Sprintf("version %d", v), false)
		default:
			record(id, "database", a, readOK, "", false)
		}
	}
	return nil
}

// String is the example as one line of JSON.
func (w LostWrite) String() string {
	b, _ := json.Marshal(w)
	return string(b)
}
