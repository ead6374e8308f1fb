package testenv

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Replicated is a master and one replica of it, all of the test's own,
// the replica's replication link running through Link so that the test
// can cut it (docs/design.md §3.15).
type Replicated struct {
	Master, Replica *RedisServer
	Link            *Proxy
}

// RedisReplicated starts a master and a replica that replicates through a
// proxy, and waits until the replica is in sync.
func RedisReplicated(t testing.TB) *Replicated {
	t.Helper()
	m := NewRedisServer(t)
	m.Start()
	link := NewProxy(t, m.Addr(), true)
	_, port, _ := strings.Cut(link.Addr(), ":")
	r := NewRedisServer(t, "--replicaof", "127.0.0.1", port)
	r.Start()
	Eventually(t, 15*time.Second, "replica in sync", func() bool {
		return strings.Contains(redisCLI(t, r.Addr(), "info", "replication"), "master_link_status:up") &&
			strings.Contains(redisCLI(t, m.Addr(), "info", "replication"), "connected_slaves:1")
	})
	return &Replicated{Master: m, Replica: r, Link: link}
}

// CutLink cuts the replica off its master and waits until the master no
// longer counts it: from then on nothing the master takes reaches it.
func (r *Replicated) CutLink(t testing.TB) {
	t.Helper()
	r.Link.SetUp(false)
	Eventually(t, 10*time.Second, "master without replicas", func() bool {
		return strings.Contains(redisCLI(t, r.Master.Addr(), "info", "replication"), "connected_slaves:0")
	})
}

// RedisSentinelCuttable is RedisSentinel with the replica's replication
// link through a proxy the test can cut (see Replicated.CutLink).
func RedisSentinelCuttable(t testing.TB) (*Sentinel, *Replicated) {
	t.Helper()
	rep := RedisReplicated(t)
	return startSentinel(t, rep.Master, rep.Replica), rep
}

// WaitPromoted waits until the sentinel names the replica master and the
// replica says so itself, and returns when it saw both.
func (s *Sentinel) WaitPromoted(d time.Duration) time.Time {
	s.t.Helper()
	Eventually(s.t, d, "the replica promoted", func() bool {
		a, err := s.MasterAddr(context.Background())
		return err == nil && a == s.Replica.Addr() &&
			strings.Contains(redisCLI(s.t, s.Replica.Addr(), "info", "replication"), "role:master")
	})
	return time.Now()
}
