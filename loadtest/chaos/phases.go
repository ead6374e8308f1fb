package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tiercache/productcache/loadtest"
)

// Phase is one fault and its bounds.
type Phase struct {
	Name  string
	Fault string // what is done, for the table
	Bound string // what must hold, for the table

	// Allowance is how long after the fault ends stale reads are
	// tolerated (0: never, beyond the 50 ms grace).
	Allowance time.Duration
	// NoFailedReads: every read must succeed.
	NoFailedReads bool
	// NoFailures: no request may fail at all.
	NoFailures bool
	// VictimOnly: requests may fail only on the target the fault hit.
	VictimOnly bool
	// StaleIfError is the allowance a share StaleIfErrorShare of the get
	// and batch reads opt in with (0: none); BatchWeight adds batch reads
	// to the mix. A phase with StaleIfError also bounds its labelled stale
	// answers: only to reads that opted in, none older than the allowance.
	StaleIfError      time.Duration
	StaleIfErrorShare float64
	BatchWeight       float64

	// MinLength is the phase's shortest length, whatever Config.Phase
	// says (0: none).
	MinLength time.Duration
	// balanced: with a balancer the phase's load goes through it, and
	// the bounds are those of the balancer (see judgeBalanced).
	balanced bool

	inject func(ctx context.Context, e *env, c clock) outcome
	// topology, when set, gives the phase targets of its own for its
	// length; undo restores the run's. An error wrapping errSkip skips
	// the phase; any other breaks it (unless the run was cancelled), and
	// the run goes on with the next phase.
	topology func(ctx context.Context, e *env) (undo func(), err error)
}

// outboxAllowance is the bound of the README for faults that keep an
// invalidation from reaching Redis: every acknowledged write is visible
// everywhere within about a second of Redis being reachable again (the
// outbox sweeper re-sends what was not delivered).
const outboxAllowance = time.Second

// window is where a fault goes in a phase of length d: from 15% to 55%.
func window(d time.Duration) (from, to time.Duration) { return d * 3 / 20, d * 11 / 20 }

// Phases are the phases of a chaos run, in their default order.
var Phases = []Phase{
	{
		Name: "baseline", Fault: "none", Bound: "no failures, no stale reads", NoFailures: true,
	},
	{
		Name: "redis-kill", Fault: "Redis kill -9, restarted after 5 s",
		Bound: "no failed reads; no stale read 1 s after Redis is back", Allowance: outboxAllowance, NoFailedReads: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			if !c.at(from) {
				return outcome{}
			}
			e.redis.Kill()
			c.at(min(from+5*time.Second, to))
			return outcome{end: c.since(), err: e.redis.Start(ctx)}
		},
	},
	{
		Name: "redis-stall", Fault: "Redis DEBUG SLEEP 2", Bound: "no failed reads, no stale reads", NoFailedReads: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, _ := window(c.d())
			if !c.at(from) {
				return outcome{}
			}
			err := e.admin.Do(ctx, "DEBUG", "SLEEP", "2").Err()
			return outcome{end: c.since(), err: err}
		},
	},
	{
		Name: "pubsub-kill", Fault: "CLIENT KILL TYPE pubsub every 2 s", Bound: "no failed reads, no stale reads", NoFailedReads: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			var err error
			c.every(from, to, 2*time.Second, func() {
				if kerr := e.admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); kerr != nil && err == nil {
					err = kerr
				}
			})
			return outcome{end: c.since(), err: err}
		},
	},
	{
		Name: "pg-terminate", Fault: "pg_terminate_backend of the replicas' connections every 3 s",
		Bound: "no failed reads, no stale reads", NoFailedReads: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			var err error
			c.every(from, to, 3*time.Second, func() {
				if _, terr := e.terminateBackends(ctx); terr != nil && err == nil {
					err = terr
				}
			})
			return outcome{end: c.since(), err: err}
		},
	},
	{
		Name:  "db-outage",
		Fault: "PostgreSQL closed to the replicas for 5 s (new connections refused, 20 hot products updated, backends terminated); half the reads send stale-if-error=60",
		Bound: "no stale read unless labelled and asked for; labelled answers at most 60 s old", StaleIfError: dbOutageAllowance,
		StaleIfErrorShare: 0.5, BatchWeight: 3,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			if !c.at(from) {
				return outcome{}
			}
			began := time.Now()
			err := e.dbOutage(ctx, c, min(from+5*time.Second, to))
			return outcome{end: c.since(), began: began, err: err}
		},
	},
	{
		Name: "replica-kill", Fault: "replica 0 SIGKILLed, restarted after 5 s",
		Bound: "only requests to replica 0 fail; no stale reads", VictimOnly: true, balanced: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			if e.lb != nil {
				return e.balancedKill(ctx, c)
			}
			return e.restartReplica(ctx, c, true)
		},
	},
	{
		Name: "replica-term", Fault: "replica 0 SIGTERMed (rolling restart), restarted",
		Bound: "only requests to replica 0 fail; no stale reads", VictimOnly: true, balanced: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			if e.lb != nil {
				return e.rollingRestart(ctx, c)
			}
			return e.restartReplica(ctx, c, false)
		},
	},
	{
		Name: "cpu-starve", Fault: "2 busy loops per CPU for 8 s", Bound: "no stale reads",
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			if !c.at(from) {
				return outcome{}
			}
			err := e.burn(ctx, to-from)
			return outcome{end: c.since(), err: err}
		},
	},
	{
		Name: "net-cut", Fault: "last replica's link to Redis: +20 ms each way, then cut for 5 s",
		Bound: "no failed reads; no stale read 1 s after the link is back", Allowance: outboxAllowance, NoFailedReads: true,
		inject: func(ctx context.Context, e *env, c clock) outcome {
			from, to := window(c.d())
			if !c.at(from) {
				return outcome{}
			}
			e.proxy.SetLatency(20 * time.Millisecond)
			c.at(from + (to-from)/3)
			e.proxy.SetCut(true)
			c.at(to)
			e.proxy.SetCut(false)
			e.proxy.SetLatency(0)
			return outcome{end: c.since()}
		},
	},
	{
		Name: "sentinel-failover",
		Fault: "Sentinel failover: the replica's replication link cut, 1 s of writes to the master alone, " +
			"the master kill -9, its replica promoted (replicas in REDIS_MODE sentinel)",
		Bound:     "no lost writes; no stale read 3 s after the promotion",
		Allowance: sentinelAllowance, MinLength: sentinelMinLength,
		topology: func(ctx context.Context, e *env) (func(), error) { return e.sentinelTopology(ctx) },
		inject:   func(ctx context.Context, e *env, c clock) outcome { return e.sentinelFailover(ctx, c) },
	},
}

// restartReplica kills (or stops) replica 0 at the start of the window and
// starts it again 5 s later.
func (e *env) restartReplica(ctx context.Context, c clock, kill bool) outcome {
	from, to := window(c.d())
	if !c.at(from) {
		return outcome{}
	}
	r := e.cl.Replicas()[0]
	if kill {
		r.Kill()
	} else {
		r.Stop()
	}
	c.at(min(from+5*time.Second, to))
	err := r.Restart(ctx)
	return outcome{end: c.since(), victim: r.URL(), err: err}
}

func selectPhases(names []string) ([]Phase, error) {
	if len(names) == 0 {
		return Phases, nil
	}
	var out []Phase
	for _, n := range names {
		found := false
		for _, p := range Phases {
			if p.Name == n {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, fmt.Errorf("chaos: unknown phase %q (%s)", n, strings.Join(PhaseNames(), ", "))
		}
	}
	return out, nil
}

// PhaseNames lists the phases' names.
func PhaseNames() []string {
	names := make([]string, len(Phases))
	for i, p := range Phases {
		names[i] = p.Name
	}
	return names
}

// judge turns a phase's measurement into its figures and checks its
// bounds.
func (ph Phase) judge(m measurement) PhaseResult {
	sum, o := m.sum, m.fault
	r := PhaseResult{
		Name: ph.Name, Fault: ph.Fault, Bound: ph.Bound,
		Requests: sum.Requests, Failed: sum.Failed, Failures: sum.Failures,
		FailedReads:  sum.Types["get"].Failed + sum.Types["list"].Failed + sum.Types["batch"].Failed,
		FailedWrites: sum.Types["create"].Failed + sum.Types["update"].Failed + sum.Types["delete"].Failed,
		StaleReads:   sum.Consistency.StaleReads, WorstStale: sum.Consistency.MaxStalenessMs,
		StaleBound: sum.Consistency.StaleReads, AllowanceMs: float64(ph.Allowance) / float64(time.Millisecond),
		P99Ms: sum.Latency.P99, L1BackMs: m.l1Back, PromotionMs: float64(o.promotion) / float64(time.Millisecond),
		LostWrites: sum.LostWrites.Lost, Unverified: sum.LostWrites.Unverified,
		Summary: sum,
	}
	if ph.Allowance > 0 {
		r.StaleBound = m.probe.AnalyzeSince(o.end + ph.Allowance).StaleReads
	}
	if o.promotion > 0 {
		r.StaleAfterPromote = m.probe.AnalyzeSince(o.end).StaleReads
	}
	r.failSafeFigures(sum)
	if ph.StaleIfError > 0 && !o.began.IsZero() {
		r.OptInFailedReadBefore, r.OptInFailedUnread = m.reads.FailedOptIn(o.began)
	}
	breach := func(format string, args ...any) { r.Breaches = append(r.Breaches, fmt.Sprintf(format, args...)) }
	if r.StaleBound > 0 {
		if ph.Allowance > 0 {
			breach("%d stale reads more than %v after the fault ended", r.StaleBound, ph.Allowance)
		} else {
			breach("%d stale reads", r.StaleBound)
		}
	}
	if r.UnrequestedStale > 0 {
		breach("%d answers labelled stale to reads that did not send stale-if-error", r.UnrequestedStale)
	}
	if r.OptInFailedReadBefore > 0 {
		breach("%d reads that sent stale-if-error failed though every key they asked had been answered before the fault", r.OptInFailedReadBefore)
	}
	if r.OverAllowance > 0 {
		breach("%d labelled stale answers older than the stale-if-error asked", r.OverAllowance)
	}
	if r.LostWrites > 0 {
		breach("%d acknowledged writes lost", r.LostWrites)
	}
	if r.Unverified > 0 {
		breach("%d acknowledged writes could not be read back", r.Unverified)
	}
	if ph.NoFailures && r.Failed > 0 {
		breach("%d failed requests", r.Failed)
	}
	if ph.NoFailedReads && r.FailedReads > 0 {
		breach("%d failed reads", r.FailedReads)
	}
	switch {
	case o.balanced:
		ph.judgeBalanced(&r, o, breach)
	case ph.VictimOnly:
		for target, n := range r.Failures.ByTarget {
			if target != o.victim && n > 0 {
				breach("%d failed requests on %s, which was not the victim%s", n, target, exampleOn(r.Failures.Examples, target))
			}
		}
	}
	r.OK = len(r.Breaches) == 0
	return r
}

// exampleOn is ", e.g. " and the first failure example on target, or ""
// when the run kept none there.
func exampleOn(examples []loadtest.FailureExample, target string) string {
	for _, e := range examples {
		if e.Target == target {
			return ", e.g. " + e.String()
		}
	}
	return ""
}
