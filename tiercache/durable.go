package tiercache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durable invalidation through a Redis failover (docs/design.md §3.15).
// Redis replicates asynchronously: a delete the master acknowledged can be
// missing on the replica that is promoted. So where the deployment has
// replicas, the delete (and the generation bump) is followed on the same
// connection by WAIT, and an invalidation that fewer replicas than asked
// acknowledged is not done: it is reported as ErrDeferred wrapping
// ErrNotReplicated, queued for retry, and a caller's outbox row stays.

// ErrNotReplicated is wrapped in the [ErrDeferred] of an invalidation that
// the Redis master took but fewer replicas than [Options.MinReplicasAck]
// acknowledged within [Options.ReplicaAckTimeout]: a failover could still
// lose it. The broadcast went out; the Redis part is retried.
var ErrNotReplicated = errors.New("tiercache: invalidation not acknowledged by enough redis replicas")

// NoReplicasAck, as [Options.MinReplicasAck], never waits for replicas.
const NoReplicasAck = -1

// replicaProbeEvery is how often, in the automatic mode, the master is
// asked (INFO) whether it has replicas and whether it is still the same
// server.
const replicaProbeEvery = time.Second

// durability decides how many replica acknowledgements an invalidation
// needs. With Options.MinReplicasAck 0 (automatic) it is 1 once the
// current master reported a connected replica, and stays 1 on that master
// (identified by its run_id) even when the replica disconnects: a replica
// cut off is exactly the case WAIT is for. A different run_id (a failover,
// a restart) starts over, and calls Options.OnMasterChange.
type durability struct {
	mu       sync.Mutex
	probedAt time.Time
	runID    string
	latched  bool // the master with runID reported a replica
}

// wantReplicas returns the acknowledgements an invalidation must get. In
// the automatic mode it reads what the last probe found: probes run on the
// retry loop, off the write path.
func (l *l2) wantReplicas() int {
	switch n := l.opt.MinReplicasAck; {
	case n > 0:
		return n
	case n < 0:
		return 0
	}
	d := &l.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.latched {
		return 1
	}
	return 0
}

// probeReplicas asks the master, at most every replicaProbeEvery, for its
// run_id and connected replicas. A failed probe changes nothing. It runs
// for the automatic MinReplicasAck only.
func (l *l2) probeReplicas() {
	d := &l.dur
	if l.opt.MinReplicasAck != 0 || time.Since(d.probedAt) < replicaProbeEvery {
		return // probedAt is only written by this goroutine
	}
	runID, replicas, err := l.masterInfo()
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.probedAt = time.Now()
	if runID != d.runID {
		changed := d.runID != ""
		d.runID, d.latched = runID, false
		if changed && l.opt.OnMasterChange != nil {
			go l.opt.OnMasterChange()
		}
	}
	if replicas > 0 {
		d.latched = true
	}
}

// masterInfo reads the master's run_id and connected replicas. In a
// Cluster it reads every master's: the run_ids joined (sorted) identify
// the set of masters, and the replicas are summed.
func (l *l2) masterInfo() (runID string, replicas int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.L2Timeout)
	defer cancel()
	cc, ok := l.rdb.(*redis.ClusterClient)
	if !ok {
		info, err := l.rdb.InfoMap(ctx, "server", "replication").Result()
		if err != nil {
			return "", 0, err
		}
		runID, replicas = masterFields(info)
		return runID, replicas, nil
	}
	var mu sync.Mutex
	var ids []string
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.InfoMap(ctx, "server", "replication").Result()
		if err != nil {
			return err
		}
		id, n := masterFields(info)
		mu.Lock()
		ids, replicas = append(ids, id), replicas+n
		mu.Unlock()
		return nil
	})
	slices.Sort(ids)
	return strings.Join(ids, ","), replicas, err
}

// masterFields picks run_id and connected_slaves out of INFO server
// replication, by section. go-redis's InfoMap builds a map of every
// field (about 100 allocations and 11 KB a probe, against 9 and 2 KB for
// a scan of INFO's text for the two fields), which costs nothing that
// matters at one probe per replicaProbeEvery.
func masterFields(info map[string]map[string]string) (runID string, replicas int) {
	replicas, _ = strconv.Atoi(info["Replication"]["connected_slaves"])
	return info["Server"]["run_id"], replicas
}

// invalidateCluster is l2.invalidate in a Cluster: the commands are sent
// to the master of each key's slot, each master's followed by its own
// WAIT, since a WAIT only covers the writes of its connection.
func (l *l2) invalidateCluster(ctx context.Context, cc *redis.ClusterClient, keys []string, groups map[string]uint64, want int) (map[string]uint64, error) {
	type shard struct {
		keys   []string
		groups []string
	}
	shards := map[*redis.Client]*shard{}
	at := func(key string) (*shard, error) {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		if shards[m] == nil {
			shards[m] = &shard{}
		}
		return shards[m], nil
	}
	for _, k := range keys {
		s, err := at(l.valueKey(k))
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	for g := range groups {
		s, err := at(l.groupKey(g))
		if err != nil {
			return nil, err
		}
		s.groups = append(s.groups, g)
	}
	out := make(map[string]uint64, len(groups))
	var short error
	for m, s := range shards {
		sub := make(map[string]uint64, len(s.groups))
		for _, g := range s.groups {
			sub[g] = groups[g]
		}
		got, err := l.invalidateOn(ctx, m, s.keys, sub, want)
		if err != nil && !errors.Is(err, ErrNotReplicated) {
			return nil, err
		}
		if err != nil {
			short = err
		}
		for g, n := range got {
			out[g] = n
		}
	}
	return out, short
}
