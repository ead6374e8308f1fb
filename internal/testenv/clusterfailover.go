package testenv

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ReplicatedCluster is a Redis Cluster of three masters, each with one
// replica, all of the test's own (docs/design.md §3.15).
type ReplicatedCluster struct {
	Addrs []string // every node: masters and replicas
	t     testing.TB
}

// RedisClusterWithReplicas starts a ReplicatedCluster (debug commands
// enabled, for DEBUG DROP-CLUSTER-PACKET-FILTER) and returns it once every
// node reports the cluster ok and every replica's link to its master is up and
// CLUSTER SLOTS lists every node (clients find replicas there).
func RedisClusterWithReplicas(t testing.TB) *ReplicatedCluster {
	t.Helper()
	c := &ReplicatedCluster{t: t}
	for range 6 {
		s := NewRedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--enable-debug-command", "yes", "--dir", tempDir(t))
		s.Start()
		c.Addrs = append(c.Addrs, s.Addr())
	}
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 20*time.Second, "cluster ok and every replica in sync", func() bool {
		replicas := 0
		for _, a := range c.Addrs {
			if !strings.Contains(redisCLI(t, a, "cluster", "info"), "cluster_state:ok") || nodeIDs(redisCLI(t, a, "cluster", "slots")) != 6 {
				return false // CLUSTER SLOTS lists a replica once gossip told the node
			}
			info := redisCLI(t, a, "info", "replication")
			if strings.Contains(info, "role:slave") {
				if !strings.Contains(info, "master_link_status:up") {
					return false
				}
				replicas++
			}
		}
		return replicas == 3
	})
	return c
}

// CLI runs one redis-cli command against the node at addr and returns its
// output (error text included).
func (c *ReplicatedCluster) CLI(addr string, args ...string) string {
	c.t.Helper()
	return redisCLI(c.t, addr, args...)
}

// ReplicaOf returns the address of the replica of the master at addr, as
// CLUSTER NODES on that master lists it.
func (c *ReplicatedCluster) ReplicaOf(master string) string {
	c.t.Helper()
	var id string
	lines := strings.Split(c.CLI(master, "cluster", "nodes"), "\n")
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 2 && strings.Contains(f[2], "myself") {
			id = f[0]
		}
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 3 && strings.Contains(f[2], "slave") && f[3] == id {
			addr, _, _ := strings.Cut(f[1], "@")
			return addr
		}
	}
	c.t.Fatalf("testenv: no replica of %s in CLUSTER NODES", master)
	return ""
}

// nodeIDs counts the node ids (40 hex digits) in CLUSTER SLOTS output.
func nodeIDs(slots string) int {
	n := 0
	for _, f := range strings.Fields(slots) {
		if len(f) == 40 && strings.Trim(f, "0123456789abcdef") == "" {
			n++
		}
	}
	return n
}
