package testenv

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Replicated is a master and one replica of it, all of the test's own.
// The replica authenticates to the master as a user of its own, which the
// test can switch off to cut the replication link (docs/design.md §3.15).
// (A proxy would not do under a sentinel: the sentinel "fixes" a replica
// that names another address than the master's and points it straight at
// the master.)
type Replicated struct {
	Master, Replica *RedisServer
	t               testing.TB
}

const replUser, replPassword = "replication", "repl-secret"

// RedisReplicated starts a master and a replica and waits until the
// replica is in sync.
func RedisReplicated(t testing.TB) *Replicated {
	t.Helper()
	m := NewRedisServer(t)
	m.Start()
	if out := redisCLI(t, m.Addr(), "acl", "setuser", replUser, "on", ">"+replPassword, "+@all", "~*", "&*"); !strings.Contains(out, "OK") {
		t.Fatalf("testenv: ACL SETUSER %s: %s", replUser, out)
	}
	r := NewRedisServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(m.Port()), "--masteruser", replUser, "--masterauth", replPassword)
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
	redisCLI(t, r.Master.Addr(), "acl", "setuser", replUser, "off")
	redisCLI(t, r.Master.Addr(), "client", "kill", "user", replUser)
	Eventually(t, 10*time.Second, "master without replicas", func() bool {
		return strings.Contains(redisCLI(t, r.Master.Addr(), "info", "replication"), "connected_slaves:0")
	})
}

// RestoreLink lets the replica back in and waits until it is in sync.
func (r *Replicated) RestoreLink(t testing.TB) {
	t.Helper()
	redisCLI(t, r.Master.Addr(), "acl", "setuser", replUser, "on")
	Eventually(t, 15*time.Second, "replica in sync again", func() bool {
		return strings.Contains(redisCLI(t, r.Replica.Addr(), "info", "replication"), "master_link_status:up")
	})
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
	Eventually(s.t, d, "the replica promoted", func() bool {
		a, err := s.MasterAddr(context.Background())
		return err == nil && a == s.Replica.Addr() &&
			strings.Contains(redisCLI(s.t, s.Replica.Addr(), "info", "replication"), "role:master")
	})
	return time.Now()
}
