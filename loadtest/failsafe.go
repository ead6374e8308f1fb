package loadtest

import (
	"net/http"
	"strconv"
	"time"
)

// FailSafe is what the run saw of the fail-safe (stale-if-error, RFC
// 5861): reads that opted in, how they and the others fared, and the
// labelled stale answers. A labelled stale answer is not a stale read for
// the consistency probe (the read asked for it and was told), but an answer
// labelled stale to a read that did not opt in breaks the contract, as does
// one older than the allowance asked.
type FailSafe struct {
	// AllowanceS is the stale-if-error the opted-in reads sent (0: none).
	AllowanceS int64 `json:"allowance_s"`
	// OptIn and OptInFailed count the reads (get and batch) sent with
	// Cache-Control: stale-if-error, and those that failed anyway.
	OptIn       int64 `json:"opt_in_reads"`
	OptInFailed int64 `json:"opt_in_failed"`
	// OtherReads and OtherFailed count the get and batch reads without it.
	OtherReads  int64 `json:"other_reads"`
	OtherFailed int64 `json:"other_failed"`
	// Served counts the answers (keys, for a batch) labelled stale.
	Served int64 `json:"served"`
	// Unrequested counts the labelled stale answers to reads that did not
	// opt in; OverAllowance those older (Age) than the allowance asked.
	// Both must be 0.
	Unrequested   int64 `json:"unrequested"`
	OverAllowance int64 `json:"over_allowance"`
	MaxAgeS       int64 `json:"max_age_s"`
}

// failSafeCounts is a window's part of [FailSafe].
type failSafeCounts struct {
	optIn, optInFailed, other, otherFailed int64
	served, unrequested, overAllowance     int64
	maxAge                                 int64
}

// add counts one sample: only get and batch reads, the ones that may opt in.
func (f *failSafeCounts) add(x *sample) {
	if x.typ != ReqGet && x.typ != ReqBatch {
		return
	}
	failed := int64(0)
	if x.failed {
		failed = 1
	}
	if x.optIn {
		f.optIn++
		f.optInFailed += failed
	} else {
		f.other++
		f.otherFailed += failed
	}
	n := x.keys[TierFailSafe]
	if x.typ == ReqGet && x.cache.Tier == TierFailSafe {
		n = 1
	}
	if n == 0 {
		return
	}
	f.served += n
	if !x.optIn {
		f.unrequested += n
	}
	if x.ageS > x.allowS && x.optIn {
		f.overAllowance += n
	}
	f.maxAge = max(f.maxAge, x.ageS)
}

func (f *failSafeCounts) merge(o failSafeCounts) {
	f.optIn += o.optIn
	f.optInFailed += o.optInFailed
	f.other += o.other
	f.otherFailed += o.otherFailed
	f.served += o.served
	f.unrequested += o.unrequested
	f.overAllowance += o.overAllowance
	f.maxAge = max(f.maxAge, o.maxAge)
}

func (f failSafeCounts) summary(allow time.Duration) FailSafe {
	return FailSafe{
		AllowanceS: int64(allow / time.Second), OptIn: f.optIn, OptInFailed: f.optInFailed,
		OtherReads: f.other, OtherFailed: f.otherFailed, Served: f.served,
		Unrequested: f.unrequested, OverAllowance: f.overAllowance, MaxAgeS: f.maxAge,
	}
}

// optIn decides whether this read sends stale-if-error, and if so sets
// the header.
func (r *runner) optIn(v *vu, req *http.Request, x *sample) {
	if r.staleIfError == "" || (x.typ != ReqGet && x.typ != ReqBatch) {
		return
	}
	if r.sc.StaleIfErrorShare < 1 && v.rng.Float64() >= r.sc.StaleIfErrorShare {
		return
	}
	x.optIn, x.allowS = true, int64(time.Duration(r.sc.StaleIfError)/time.Second)
	req.Header["Cache-Control"] = []string{r.staleIfError}
}

// noteAge reads the Age of a labelled fail-safe answer.
func (x *sample) noteAge(resp *http.Response) {
	if a, err := strconv.ParseInt(resp.Header.Get("Age"), 10, 64); err == nil && a >= 0 {
		x.ageS = a
	}
}
