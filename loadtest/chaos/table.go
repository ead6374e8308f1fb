package chaos

import (
	"fmt"
	"io"
	"strings"

	"github.com/tiercache/productcache/loadtest"
)

// WriteTable prints one row per phase, then every broken bound.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%-17s %8s %7s %6s %-24s %-26s %7s %9s %9s %8s %8s %4s  %s\n",
		"phase", "requests", "failed", "reads", "by status", "by cause", "stale", "worst", "beyond", "p99", "L1 back", "lost", "verdict")
	for _, p := range r.Phases {
		if p.Skipped != "" {
			fmt.Fprintf(w, "%-17s skipped: %s\n", p.Name, p.Skipped)
			continue
		}
		if p.NotStarted != "" {
			fmt.Fprintf(w, "%-17s did not start  BROKEN\n", p.Name)
			continue
		}
		l1 := "-"
		switch {
		case p.L1BackMs >= 0:
			l1 = loadtest.FormatMs(p.L1BackMs)
		case p.L1BackMs < 0:
			l1 = ">10s"
		}
		verdict := "ok"
		if !p.OK {
			verdict = "BROKEN"
		}
		fmt.Fprintf(w, "%-17s %8d %7d %6d %-24s %-26s %7d %9s %9d %8s %8s %4d  %s\n",
			p.Name, p.Requests, p.Failed, p.FailedReads, loadtest.CountsText(p.Failures.ByStatus), loadtest.CountsText(p.Failures.ByCause),
			p.StaleReads, loadtest.FormatMs(p.WorstStale), p.StaleBound, loadtest.FormatMs(p.P99Ms), l1, p.LostWrites, verdict)
	}
	fmt.Fprintln(w, "\nstale: reads older than 50 ms after an acknowledged write; beyond: those that began after the")
	fmt.Fprintln(w, "phase's allowance (1 s after Redis or the link is back for redis-kill and net-cut, 3 s after the")
	fmt.Fprintln(w, "promotion for sentinel-failover, none otherwise);")
	fmt.Fprintln(w, "L1 back: from the end of the fault until every replica answered from L1 again.")
	for _, p := range r.Phases {
		if p.FailedWrites > 0 || p.UnknownOutcomes > 0 {
			fmt.Fprintf(w, "%s: %d failed writes, %d of them of unknown outcome (the database connection lost after COMMIT was sent).\n",
				p.Name, p.FailedWrites, p.UnknownOutcomes)
		}
	}
	r.writeFailover(w)
	r.writeFailSafe(w)
	for _, p := range r.Phases {
		if p.Balancer == "" {
			continue
		}
		if p.Draining != nil {
			fmt.Fprintf(w, "%s through %s: %d failed of %d; requests each replica served while draining: %s.\n",
				p.Name, p.Balancer, p.Failed, p.Requests, loadtest.CountsText(p.Draining))
		} else {
			fmt.Fprintf(w, "%s through %s: %d failed of %d; %d requests were in flight on the killed replica.\n",
				p.Name, p.Balancer, p.Failed, p.Requests, p.InFlight)
		}
	}
	for _, p := range r.Phases {
		if !p.OK {
			fmt.Fprintf(w, "\n%s (%s; bound: %s):\n  %s\n", p.Name, p.Fault, p.Bound, strings.Join(p.Breaches, "\n  "))
		}
	}
	fmt.Fprintln(w)
}

// writeFailSafe prints, for the phases whose reads opted in to
// stale-if-error, how opted-in and other reads fared.
func (r *Result) writeFailSafe(w io.Writer) {
	header := false
	for _, p := range r.Phases {
		if p.OptInReads == 0 && p.LabelledStale == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\n%-13s %16s %12s %16s %9s %6s %11s %11s %12s\n",
				"stale-if-error", "opted-in failed", "read/unread", "others failed", "labelled", "oldest", "not asked", "over allow", "labelled old")
			header = true
		}
		fmt.Fprintf(w, "%-13s %16s %12s %16s %9d %6s %11d %11d %12d\n", p.Name,
			fmt.Sprintf("%d/%d", p.OptInFailed, p.OptInReads), fmt.Sprintf("%d/%d", p.OptInFailedReadBefore, p.OptInFailedUnread),
			fmt.Sprintf("%d/%d", p.OtherFailed, p.OtherReads),
			p.LabelledStale, fmt.Sprintf("%ds", p.MaxStaleAgeS), p.UnrequestedStale, p.OverAllowance, p.LabelledOld)
	}
	if header {
		fmt.Fprintln(w, "read/unread: of the opted-in failed, those whose every key had been answered before the fault")
		fmt.Fprintln(w, "(any replica; each breaks the bound) / those with a key not answered before it;")
		fmt.Fprintln(w, "labelled: answers (keys, for batches) served from the fail-safe store and labelled stale, never counted")
		fmt.Fprintln(w, "as stale reads; not asked / over allow: labelled answers to reads without stale-if-error / older than it")
		fmt.Fprintln(w, "(both break the bound); labelled old: labelled answers older than an acknowledged write.")
	}
}

// writeFailover prints, for the failover phases, how long the promotion
// took and what the replicas deferred and replayed.
func (r *Result) writeFailover(w io.Writer) {
	for _, p := range r.Phases {
		if p.PromotionMs > 0 {
			fmt.Fprintf(w, "%s: promotion seen %s after the master's kill; stale reads that began after it: %d;\n"+
				"invalidations deferred for want of a replica's acknowledgement (WAIT): %d; outbox replays after the\n"+
				"master change: %d (summed over the replicas).\n",
				p.Name, loadtest.FormatMs(p.PromotionMs), p.StaleAfterPromote, p.NotReplicated, p.Replays)
		}
	}
}
