package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/loadtest/cluster"
)

// RedisCluster starts a Redis Cluster of three masters (no replicas) of
// the test's own and returns their addresses once every node reports the
// cluster ok.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	return redisCluster(t, nil)
}

// RedisClusterTLS is RedisCluster speaking TLS only (clients and the
// cluster bus), with the certificates of files.
func RedisClusterTLS(t testing.TB, files TLSFiles) []string {
	t.Helper()
	return redisCluster(t, &files)
}

func redisCluster(t testing.TB, files *TLSFiles) []string {
	t.Helper()
	var addrs []string
	var cli []string // redis-cli's TLS flags
	for range 3 {
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--dir", tempDir(t)}
		var s *RedisServer
		if files != nil {
			s = NewTLSRedisServer(t, *files, append(args, "--tls-cluster", "yes")...)
			cli = []string{"--tls", "--cacert", files.CA}
		} else {
			s = NewRedisServer(t, args...)
		}
		s.Start()
		addrs = append(addrs, s.Addr())
	}
	args := append(append(append([]string{}, cli...), "--cluster", "create"), addrs...)
	if out, err := exec.Command("redis-cli", append(args, "--cluster-yes")...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 10*time.Second, "cluster_state:ok on every node", func() bool {
		for _, a := range addrs {
			if !strings.Contains(redisCLI(t, a, append(cli, "cluster", "info")...), "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return addrs
}

// ClusterURL is the REDIS_URL of a cluster for REDIS_MODE cluster:
// redis://first?addr=second&addr=third.
func ClusterURL(addrs []string) string {
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Sentinel is a master, one replica of it and one sentinel watching them,
// all of the test's own.
type Sentinel struct {
	Master, Replica *RedisServer
	Addr            string // the sentinel's host:port
	MasterName      string
	t               testing.TB
}

// RedisSentinel starts a Sentinel setup and waits until the replica is in
// sync and the sentinel knows both nodes.
func RedisSentinel(t testing.TB) *Sentinel {
	t.Helper()
	m := NewRedisServer(t)
	m.Start()
	r := NewRedisServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(m.Port()))
	r.Start()
	return startSentinel(t, m, r)
}

// startSentinel starts a sentinel watching master m and its replica r and
// waits until r is in sync and promotable.
func startSentinel(t testing.TB, m, r *RedisServer) *Sentinel {
	t.Helper()
	conf := filepath.Join(tempDir(t), "sentinel.conf")
	err := os.WriteFile(conf, []byte(cluster.SentinelConf("productsd", m.Port(), 2*time.Second)), 0o600)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	sn := NewRedisServer(t, "--sentinel")
	sn.conf = conf
	sn.Start()
	s := &Sentinel{Master: m, Replica: r, Addr: sn.Addr(), MasterName: "productsd", t: t}
	Eventually(t, 15*time.Second, "replica in sync and promotable by the sentinel", func() bool {
		return strings.Contains(redisCLI(t, r.Addr(), "info", "replication"), "master_link_status:up") &&
			cluster.SentinelPromotable(context.Background(), s.Addr, s.MasterName, r.Port())
	})
	return s
}

// URL is the REDIS_URL of the setup for REDIS_MODE sentinel.
func (s *Sentinel) URL() string { return "redis://" + s.Addr + "/0?master_name=" + s.MasterName }

// MasterAddr asks the sentinel which node is the master now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	return cluster.SentinelMaster(ctx, s.Addr, s.MasterName)
}

// promoted reports whether the sentinel names the replica master and the
// replica says so itself.
func (s *Sentinel) promoted() bool {
	return cluster.Promoted(context.Background(), s.Addr, s.MasterName, s.Replica.Addr())
}

// Failover makes the sentinel promote the replica and waits until the
// sentinel names it master. (The sentinel turns the old master into a
// replica later, at its next look at it.)
func (s *Sentinel) Failover() {
	s.t.Helper()
	if out := redisCLI(s.t, s.Addr, "sentinel", "failover", s.MasterName); !strings.Contains(out, "OK") {
		s.t.Fatalf("testenv: SENTINEL FAILOVER: %s", out)
	}
	Eventually(s.t, 20*time.Second, "the replica promoted", s.promoted)
}

// redisCLI runs one redis-cli command against addr and returns its output
// (error text included, for the caller to match).
func redisCLI(t testing.TB, addr string, args ...string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, _ := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out)
}
