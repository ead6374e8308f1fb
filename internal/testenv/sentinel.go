package testenv

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest/cluster"
)

// Replicated is a master and one replica of it, all of the test's own.
// The replica authenticates to the master as cluster.ReplicationUser, which
// the test can switch off to cut the replication link (docs/design.md
// §3.15).
type Replicated struct {
	Master, Replica *RedisServer
	t               testing.TB
}

// RedisReplicated starts a master and a replica and waits until the
// replica is in sync.
func RedisReplicated(t testing.TB) *Replicated {
	t.Helper()
	m := NewRedisServer(t)
	m.Start()
	if err := cluster.AddReplicationUser(context.Background(), m.Addr()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	r := NewRedisServer(t, cluster.ReplicaArgs("127.0.0.1", strconv.Itoa(m.Port()))...)
	r.Start()
	Eventually(t, 15*time.Second, "replica in sync", func() bool {
		return strings.Contains(redisCLI(t, r.Addr(), "info", "replication"), "master_link_status:up") &&
			strings.Contains(redisCLI(t, m.Addr(), "info", "replication"), "connected_slaves:1")
	})
	return &Replicated{Master: m, Replica: r, t: t}
}

// CutLink cuts the replica off its master (its user switched off, its
// connection killed) and waits until the master no longer counts it: from
// then on nothing the master takes reaches it.
func (r *Replicated) CutLink(t testing.TB) {
	t.Helper()
	if err := cluster.CutReplicationLink(context.Background(), r.Master.Addr(), 10*time.Second); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// RestoreLink lets the replica back in and waits until it is in sync.
func (r *Replicated) RestoreLink(t testing.TB) {
	t.Helper()
	if err := cluster.RestoreReplicationLink(context.Background(), r.Master.Addr(), r.Replica.Addr(), 15*time.Second); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// RedisSentinelCuttable is RedisSentinel with the replica's replication
// link cuttable (see Replicated.CutLink).
func RedisSentinelCuttable(t testing.TB) (*Sentinel, *Replicated) {
	t.Helper()
	rep := RedisReplicated(t)
	return startSentinel(t, rep.Master, rep.Replica), rep
}

// WaitPromoted waits until the sentinel names the replica master and the
// replica says so itself, and returns when it saw both.
func (s *Sentinel) WaitPromoted(d time.Duration) time.Time {
	s.t.Helper()
	Eventually(s.t, d, "the replica promoted", s.promoted)
	return time.Now()
}
