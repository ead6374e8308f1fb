package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tiercache/productcache/loadtest/cluster"
)

// startBalancer starts haproxy in front of the replicas and waits until
// it shows every one UP. A connection a replica refused is retried on
// another (nothing was sent); a request a replica took and never
// answered is not.
func (e *env) startBalancer(ctx context.Context) error {
	var backends []string
	for _, u := range e.urls {
		backends = append(backends, strings.TrimPrefix(u, "http://"))
	}
	lb, err := cluster.StartHAProxy(ctx, cluster.HAProxyConfig{Binary: e.cfg.HAProxy, Backends: backends, Retries: 2, Output: e.cfg.Output})
	if err != nil {
		return err
	}
	e.lb = lb
	for i := range backends {
		if err := e.waitUp(ctx, i); err != nil {
			lb.Stop()
			return err
		}
	}
	e.cfg.Logf("chaos: haproxy on %s in front of the replicas for replica-kill and replica-term", lb.URL())
	return nil
}

// waitUp waits until the balancer shows replica i UP (rise 2 at inter
// 500ms: about a second after it is ready).
func (e *env) waitUp(ctx context.Context, i int) error {
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for !e.lb.ServerUp(wctx, cluster.ServerName(i)) {
		select {
		case <-wctx.Done():
			return fmt.Errorf("chaos: haproxy does not show replica %d UP: %w", i, wctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// targets are where a phase's load goes: the balancer for the phases
// that restart replicas, when there is one, else the replicas.
func (e *env) targets(ph Phase) []string {
	if e.lb != nil && ph.balanced {
		return []string{e.lb.URL()}
	}
	return e.urls
}

// served is how many requests the balancer has sent replica i so far.
func (e *env) served(ctx context.Context, i int) (cluster.Server, error) {
	s, err := e.lb.Servers(ctx)
	if err != nil {
		return cluster.Server{}, err
	}
	return s[cluster.ServerName(i)], nil
}

// rollingRestart SIGTERMs every replica in turn behind the balancer,
// restarts it and waits until the balancer takes it back, and counts the
// requests each served while it drained (between SIGTERM and exit).
func (e *env) rollingRestart(ctx context.Context, c clock) outcome {
	from, _ := window(c.d())
	if !c.at(from) {
		return outcome{}
	}
	o := outcome{balanced: true, draining: make(map[string]int64)}
	for i, r := range e.cl.Replicas() {
		before, err := e.served(ctx, i)
		if err != nil {
			return outcome{err: err}
		}
		r.Stop() // SIGTERM, and wait for the exit
		after, err := e.served(ctx, i)
		if err != nil {
			return outcome{err: err}
		}
		o.draining[cluster.ServerName(i)] = after.Total - before.Total
		if err := r.Restart(ctx); err != nil {
			return outcome{err: err}
		}
		if err := e.waitUp(ctx, i); err != nil {
			return outcome{err: err}
		}
	}
	o.end = c.since()
	return o
}

// balancedKill SIGKILLs replica 0 behind the balancer, noting how many
// requests it had in flight, and restarts it 5 s later.
func (e *env) balancedKill(ctx context.Context, c clock) outcome {
	from, to := window(c.d())
	if !c.at(from) {
		return outcome{}
	}
	r := e.cl.Replicas()[0]
	s, err := e.served(ctx, 0)
	if err != nil {
		return outcome{err: err}
	}
	r.Kill()
	c.at(min(from+5*time.Second, to))
	err = r.Restart(ctx)
	if err == nil {
		err = e.waitUp(ctx, 0)
	}
	return outcome{end: c.since(), balanced: true, inFlight: s.Current, vus: e.cfg.VUs, err: err}
}

// The faults and bounds of the restart phases behind the balancer.
const (
	termThroughBalancer  = "every replica in turn SIGTERMed behind haproxy, restarted, taken back"
	termBalancedBound    = "no failed requests; no stale reads"
	killThroughBalancer  = "replica 0 SIGKILLed behind haproxy, restarted after 5 s"
	killBalancedBound    = "only the requests in flight on replica 0 fail; no stale reads"
	badGatewayStatusText = "502"
)

// judgeBalanced checks the bounds of a restart phase run through the
// balancer: a rolling restart fails nothing (the drain and the readiness
// check do their job); a kill fails only the requests that were in
// flight on the victim, no more than there are virtual users, each
// answered 502 or with the client connection closed or reset (what
// haproxy does to a request whose server died under it). A connection
// the dead replica refused is retried elsewhere, so a refused
// connection, a timeout or any other status breaks the bound.
func (ph Phase) judgeBalanced(r *PhaseResult, o outcome, breach func(string, ...any)) {
	r.Balancer, r.Draining, r.InFlight = "haproxy", o.draining, o.inFlight
	if o.draining != nil {
		r.Fault, r.Bound = termThroughBalancer, termBalancedBound
		if r.Failed > 0 {
			breach("%d failed requests during the rolling restart", r.Failed)
		}
		return
	}
	r.Fault, r.Bound = killThroughBalancer, killBalancedBound
	for status, n := range r.Failures.ByStatus {
		if status != badGatewayStatusText && n > 0 {
			breach("%d requests failed with %s, not the 502 of a request the killed replica dropped", n, status)
		}
	}
	for cause, n := range r.Failures.ByCause {
		if cause != "closed" && cause != "reset" && n > 0 {
			breach("%d requests got no answer from the balancer (%s)", n, cause)
		}
	}
	if r.Failed > int64(o.vus) {
		breach("%d failed requests, more than the %d that can be in flight", r.Failed, o.vus)
	}
}

// fault is what a phase does, as this run does it.
func (e *env) fault(ph Phase) string {
	switch {
	case e.lb == nil || !ph.balanced:
		return ph.Fault
	case ph.Name == "replica-term":
		return termThroughBalancer
	}
	return killThroughBalancer
}
