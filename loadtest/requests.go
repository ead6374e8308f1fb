package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// vu is one virtual user: its own RNG, buffers and the products it created
// (the only ones it deletes, so reads never meet a deleted key).
type vu struct {
	id      int
	rng     *rand.Rand
	shard   *shard
	buf     bytes.Buffer
	created []string
	n       int64
	ranks   []int // the keys (ranks) of the last get or batch, reused
}

// product is the part of a product the generator reads.
type product struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

// expected status per request type; anything else is a failure.
var expectStatus = [numReqTypes]int{200, 200, 201, 200, 204, 200}

// request sends one request to a target picked for it and reads the whole
// body into v.buf. It notes the target and the status code in x.
func (r *runner) request(ctx context.Context, v *vu, x *sample, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	x.target, x.method, x.path = r.target(v), method, path
	req, err := http.NewRequestWithContext(ctx, method, x.target+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r.optIn(v, req, x)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	x.code = resp.StatusCode
	v.buf.Reset()
	_, err = v.buf.ReadFrom(resp.Body)
	return resp, err
}

// target picks a base URL like a load balancer.
func (r *runner) target(v *vu) string {
	if len(r.sc.Targets) == 1 {
		return r.sc.Targets[0]
	}
	if r.sc.Balance == "random" {
		return r.sc.Targets[v.rng.IntN(len(r.sc.Targets))]
	}
	return r.sc.Targets[(r.rr.Add(1)-1)%uint64(len(r.sc.Targets))]
}

// pickType draws a request type from the mix.
func (r *runner) pickType(v *vu) ReqType {
	x := v.rng.Float64() * r.mixTotal
	for t, c := range r.mixCum {
		if x < c {
			return ReqType(t)
		}
	}
	return ReqGet
}

// iterate is one iteration: one request of a type drawn from the mix.
func (r *runner) iterate(ctx context.Context, v *vu, scheduled time.Time) {
	typ := r.pickType(v)
	if typ == ReqDelete && len(v.created) == 0 {
		typ = ReqCreate // delete only what this VU created
	}
	begin := time.Now()
	if scheduled.IsZero() {
		scheduled = begin
	}
	x := sample{typ: typ}
	var err error
	switch typ {
	case ReqGet:
		err = r.doGet(ctx, v, begin, &x)
	case ReqList:
		err = r.doList(ctx, v, &x)
	case ReqCreate:
		err = r.doCreate(ctx, v, &x)
	case ReqUpdate:
		err = r.doUpdate(ctx, v, &x)
	case ReqDelete:
		err = r.doDelete(ctx, v, &x)
	case ReqBatch:
		err = r.doBatch(ctx, v, begin, &x)
	}
	if err != nil && ctx.Err() != nil {
		return // the run was cancelled: not the server's fault
	}
	x.latency = time.Since(scheduled)
	if err != nil {
		x.failed, x.checks, x.checkOK = true, max(x.checks, 1), 0
		x.cause = ClassifyError(err)
	}
	if x.failed {
		var body []byte
		if err == nil {
			body = v.buf.Bytes()
		}
		r.examples.note(begin.Sub(r.start), x.method, &x, body, err)
	}
	if x.failed && x.optIn {
		r.reads.failedRead(begin, v.ranks)
	}
	v.shard.add(x)
	if r.points != nil {
		r.points.add(scheduled.Add(x.latency), &x)
	}
}

// status records the status check and failure of a response.
func (x *sample) status(resp *http.Response) bool {
	ok := resp.StatusCode == expectStatus[x.typ]
	x.checks++
	if ok {
		x.checkOK++
	} else {
		x.failed = true
	}
	return ok
}

func (r *runner) doGet(ctx context.Context, v *vu, begin time.Time, x *sample) error {
	k := r.keys.Next(v.rng)
	id := r.ids[k]
	v.ranks = append(v.ranks[:0], k)
	resp, err := r.request(ctx, v, x, http.MethodGet, "/products/"+id, nil)
	if err != nil {
		return err
	}
	x.cache = r.statuses.classify(resp.Header.Get("Cache-Status"))
	labelled := x.cache.Tier == TierFailSafe
	if labelled {
		x.noteAge(resp)
	}
	if !x.status(resp) {
		return nil
	}
	ver, ok := versionOf(resp, v.buf.Bytes())
	x.checks++
	if ok {
		x.checkOK++
		r.reads.answered(k, time.Now())
		if k < r.probeN {
			r.probe.read(id, ver, begin.Sub(r.start), labelled)
		}
	}
	return nil
}

func (r *runner) doList(ctx context.Context, v *vu, x *sample) error {
	path := "/products?limit=" + strconv.Itoa(r.sc.ListLimit)
	if v.rng.IntN(5) > 0 { // one list in five reads the first page
		path += "&after=" + r.ids[r.keys.Next(v.rng)]
	}
	resp, err := r.request(ctx, v, x, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	x.cache = r.statuses.classify(resp.Header.Get("Cache-Status"))
	x.status(resp)
	return nil
}

func (r *runner) productBody(v *vu) []byte {
	v.n++
	return fmt.Appendf(nil, `{"name":"loadtest vu%d #%d","description":"written by loadtest","price_cents":%d}`,
		v.id, v.n, v.rng.IntN(1_000_000))
}

func (r *runner) doCreate(ctx context.Context, v *vu, x *sample) error {
	resp, err := r.request(ctx, v, x, http.MethodPost, "/products", r.productBody(v))
	if err != nil {
		return err
	}
	if x.status(resp) {
		var p product
		if json.Unmarshal(v.buf.Bytes(), &p) == nil && p.ID != "" {
			v.created = append(v.created, p.ID)
			r.ledger.Write(p.ID, max(p.Version, 1), time.Since(r.start))
		}
	}
	return nil
}

func (r *runner) doUpdate(ctx context.Context, v *vu, x *sample) error {
	k := r.keys.Next(v.rng)
	id := r.ids[k]
	resp, err := r.request(ctx, v, x, http.MethodPut, "/products/"+id, r.productBody(v))
	ack := time.Now()
	if err != nil {
		return err
	}
	if !x.status(resp) {
		return nil
	}
	if ver, ok := versionOf(resp, v.buf.Bytes()); ok {
		r.ledger.Write(id, ver, ack.Sub(r.start))
		if k < r.probeN {
			r.probe.Write(id, ver, ack.Sub(r.start))
		}
	}
	return nil
}

func (r *runner) doDelete(ctx context.Context, v *vu, x *sample) error {
	id := v.created[len(v.created)-1]
	v.created = v.created[:len(v.created)-1]
	resp, err := r.request(ctx, v, x, http.MethodDelete, "/products/"+id, nil)
	if err != nil {
		r.ledger.DeleteUnanswered(id)
		return err
	}
	switch {
	case x.status(resp):
		r.ledger.Delete(id, time.Since(r.start))
	case resp.StatusCode >= 500:
		r.ledger.DeleteUnanswered(id)
	}
	return nil
}

// versionOf reads the product version from the ETag ("<version>", possibly
// weak), or from the JSON body when there is no usable ETag.
func versionOf(resp *http.Response, body []byte) (int64, bool) {
	if et := strings.TrimPrefix(resp.Header.Get("ETag"), "W/"); len(et) > 2 {
		if v, err := strconv.ParseInt(strings.Trim(et, `"`), 10, 64); err == nil {
			return v, true
		}
	}
	var p product
	if json.Unmarshal(body, &p) != nil || p.Version == 0 {
		return 0, false
	}
	return p.Version, true
}
