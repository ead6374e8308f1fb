package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/productcache/loadtest/cluster"
)

// The sentinel-failover phase runs on a topology of its own: a master, a
// replica whose replication link is cut, one sentinel, and the replicas
// restarted in REDIS_MODE sentinel (docs/design.md §3.15).
const (
	// sentinelAllowance is the failover bound of the README: within 3 s
	// of the promotion every replica serves the new version (the WAIT
	// that deferred the cut-off writes' invalidations, and the outbox
	// replay every replica runs on +switch-master).
	sentinelAllowance = 3 * time.Second
	// sentinelDownAfter is when the sentinel calls the killed master down.
	sentinelDownAfter = time.Second
	// sentinelCutWrites is how long the load writes to the master alone
	// (acknowledged, not replicated) before the master is killed.
	sentinelCutWrites = time.Second
	// sentinelMinLength is the phase's shortest length: about 2 s before
	// the cut, 1 s of writes, 2-3 s until the promotion, and at least 5 s of
	// load after the allowance began.
	sentinelMinLength = 15 * time.Second
)

// errSkip is returned (wrapped) by a phase's topology when a program the
// phase needs is not installed here.
var errSkip = errors.New("skipped")

// sentinelTopology stops the phase's replicas, starts the sentinel setup
// and as many replicas in REDIS_MODE sentinel, and makes them the targets.
// undo stops them, empties the private Redis the first replicas used
// (their L2 holds versions the phase's writes superseded) and restarts
// the first replicas (waiting until the balancer, if any, shows them up).
func (e *env) sentinelTopology(ctx context.Context) (undo func(), err error) {
	s, err := cluster.StartSentinel(ctx, e.cfg.Output, sentinelDownAfter)
	if errors.Is(err, cluster.ErrNoSentinel) {
		return nil, fmt.Errorf("%w: %w", errSkip, err)
	}
	if err != nil {
		return nil, err
	}
	main, urls := e.cl, e.urls
	for _, r := range main.Replicas() {
		r.Stop()
	}
	undo = func() {
		e.cl, e.urls, e.sen = main, urls, nil
		s.Stop()
		ctx := context.WithoutCancel(ctx)
		if ferr := e.admin.FlushAll(ctx).Err(); ferr != nil {
			e.cfg.Logf("chaos: sentinel-failover: FLUSHALL of the first Redis: %v", ferr)
		}
		for i, r := range main.Replicas() {
			if rerr := r.Restart(ctx); rerr != nil {
				e.cfg.Logf("chaos: sentinel-failover: restart %s: %v", r.URL(), rerr)
			}
			if e.lb == nil {
				continue
			}
			if werr := e.waitUp(ctx, i); werr != nil { // the next phase may go through it
				e.cfg.Logf("chaos: sentinel-failover: %v", werr)
			}
		}
	}
	cl, err := cluster.StartCluster(ctx, cluster.Config{
		Binary: e.cfg.Binary, DatabaseURL: e.cfg.DatabaseURL, RedisURL: s.URL(), Mode: "tiered",
		Replicas: e.cfg.Replicas, Namespace: e.ns, Output: e.cfg.Output, Env: []string{"REDIS_MODE=sentinel"},
	})
	if err != nil {
		undo()
		return nil, err
	}
	stop := undo
	undo = func() { cl.Stop(); stop() }
	e.cl, e.urls, e.sen = cl, cl.URLs(), s
	e.cfg.Logf("chaos: sentinel-failover: master %s, replica %s, %s; %d replicas in REDIS_MODE sentinel",
		s.Master.Addr(), s.Replica.Addr(), s.URL(), e.cfg.Replicas)
	return undo, nil
}

// sentinelFailover cuts the replica's link, lets the load write to the
// master alone for sentinelCutWrites, kills the master and waits for the
// promotion, which ends the fault.
func (e *env) sentinelFailover(ctx context.Context, c clock) outcome {
	from, _ := window(c.d())
	if !c.at(from) {
		return outcome{}
	}
	s := e.sen
	if err := s.CutLink(ctx); err != nil {
		return outcome{err: err}
	}
	cut := c.since()
	c.at(cut + sentinelCutWrites)
	s.Master.Kill()
	killed := c.since()
	if err := s.WaitPromoted(ctx, 30*time.Second); err != nil {
		return outcome{err: err}
	}
	end := c.since()
	e.cfg.Logf("chaos: sentinel-failover: link cut at %v, master killed at %v, promotion seen at %v",
		cut.Round(time.Millisecond), killed.Round(time.Millisecond), end.Round(time.Millisecond))
	return outcome{end: end, promotion: end - killed}
}
