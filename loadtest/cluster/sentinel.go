package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The replication link of a replica made by [ReplicaArgs] is cut by
// switching its master's ReplicationUser off (docs/design.md §3.15). A
// proxy would not do under a sentinel: the sentinel "fixes" a replica
// that names another address than the master's and points it straight at
// the master.
const (
	ReplicationUser     = "replication"
	replicationPassword = "repl-secret"
)

// ErrNoSentinel is returned (wrapped) when there is no redis-server here
// to run as a sentinel.
var ErrNoSentinel = errors.New("cluster: redis-server is not installed")

// ReplicaArgs are the redis-server arguments of a replica of the master
// on host:port that authenticates as ReplicationUser.
func ReplicaArgs(host, port string) []string {
	return []string{"--replicaof", host, port, "--masteruser", ReplicationUser, "--masterauth", replicationPassword}
}

// AddReplicationUser creates ReplicationUser on the master at addr.
func AddReplicationUser(ctx context.Context, addr string) error {
	return redisDo(ctx, addr, "ACL", "SETUSER", ReplicationUser, "on", ">"+replicationPassword, "+@all", "~*", "&*")
}

// CutReplicationLink switches ReplicationUser off on the master at addr,
// kills its connections and waits until the master counts no replica:
// from then on nothing the master takes reaches the replica.
func CutReplicationLink(ctx context.Context, addr string, timeout time.Duration) error {
	if err := redisDo(ctx, addr, "ACL", "SETUSER", ReplicationUser, "off"); err != nil {
		return err
	}
	if err := redisDo(ctx, addr, "CLIENT", "KILL", "USER", ReplicationUser); err != nil {
		return err
	}
	return poll(ctx, timeout, "master "+addr+" without replicas", func() bool {
		return infoHas(ctx, addr, "connected_slaves:0")
	})
}

// RestoreReplicationLink lets the replica at replica back in to the
// master at master and waits until it is in sync.
func RestoreReplicationLink(ctx context.Context, master, replica string, timeout time.Duration) error {
	if err := redisDo(ctx, master, "ACL", "SETUSER", ReplicationUser, "on"); err != nil {
		return err
	}
	return poll(ctx, timeout, "replica "+replica+" in sync again", func() bool {
		return infoHas(ctx, replica, "master_link_status:up")
	})
}

// SentinelConf is the configuration file of a sentinel that monitors, as
// name with a quorum of 1, the master on 127.0.0.1:masterPort and calls it
// down after downAfter.
func SentinelConf(name string, masterPort int, downAfter time.Duration) string {
	return fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s 10000\n", name, masterPort, name, downAfter.Milliseconds(), name)
}

// SentinelPromotable reports whether the sentinel at addr would pick the
// replica on replicaPort for a failover of name. Listed is not enough: a
// replica the sentinel only discovered is flagged disconnected, and one
// whose link it has not yet seen up reports master-link-status err;
// either way SENTINEL FAILOVER answers NOGOODSLAVE.
func SentinelPromotable(ctx context.Context, addr, name string, replicaPort int) bool {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer c.Close()
	rs, err := c.Replicas(ctx, name).Result()
	if err != nil {
		return false
	}
	for _, kv := range rs {
		if kv["port"] == strconv.Itoa(replicaPort) && kv["flags"] == "slave" && kv["master-link-status"] == "ok" {
			return true
		}
	}
	return false
}

// SentinelMaster asks the sentinel at addr which node masters name now.
func SentinelMaster(ctx context.Context, addr, name string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer c.Close()
	a, err := c.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return "", fmt.Errorf("cluster: sentinel %s: %w", addr, err)
	}
	return net.JoinHostPort(a[0], a[1]), nil
}

// Promoted reports whether the sentinel at addr names replica the master
// of name and replica says so itself.
func Promoted(ctx context.Context, addr, name, replica string) bool {
	a, err := SentinelMaster(ctx, addr, name)
	return err == nil && a == replica && infoHas(ctx, replica, "role:master")
}

// Sentinel is a private master, one replica of it whose replication link
// can be cut, and one sentinel watching them.
type Sentinel struct {
	Master, Replica *RedisServer
	sentinel        *RedisServer
	dir             string
	MasterName      string
}

// StartSentinel starts a master, a replica and a sentinel that calls the
// master down after downAfter, and waits until the replica is in sync and
// the sentinel would promote it. It returns an error wrapping
// ErrNoSentinel when redis-server is not installed; any other failure to
// start is an error of its own. What it started is stopped on error.
func StartSentinel(ctx context.Context, output io.Writer, downAfter time.Duration) (*Sentinel, error) {
	s := &Sentinel{MasterName: "chaos"}
	if err := s.start(ctx, output, downAfter); err != nil {
		s.Stop()
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrNoSentinel, err)
		}
		return nil, err
	}
	return s, nil
}

func (s *Sentinel) start(ctx context.Context, output io.Writer, downAfter time.Duration) (err error) {
	if s.Master, err = StartRedis(ctx, output); err != nil {
		return err
	}
	if err = AddReplicationUser(ctx, s.Master.Addr()); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(s.Master.Addr())
	if s.Replica, err = startRedis(ctx, output, ReplicaArgs(host, port), ""); err != nil {
		return err
	}
	if err = waitReplicaLink(ctx, s.Master.Addr(), s.Replica.Addr()); err != nil {
		return err
	}
	if s.dir, err = os.MkdirTemp("", "chaos-sentinel-"); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	conf := filepath.Join(s.dir, "sentinel.conf")
	if err = os.WriteFile(conf, []byte(SentinelConf(s.MasterName, s.Master.Port(), downAfter)), 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if s.sentinel, err = startRedis(ctx, output, []string{"--sentinel"}, conf); err != nil {
		return fmt.Errorf("cluster: sentinel: %w", err)
	}
	return poll(ctx, 15*time.Second, "the replica promotable by the sentinel", func() bool {
		return SentinelPromotable(ctx, s.sentinel.Addr(), s.MasterName, s.Replica.Port())
	})
}

// URL is the REDIS_URL of the setup for REDIS_MODE sentinel.
func (s *Sentinel) URL() string {
	return "redis://" + s.sentinel.Addr() + "/0?master_name=" + s.MasterName
}

// CutLink cuts the replica off the master (see [CutReplicationLink]).
func (s *Sentinel) CutLink(ctx context.Context) error {
	return CutReplicationLink(ctx, s.Master.Addr(), 10*time.Second)
}

// WaitPromoted waits up to d until the sentinel names the replica master
// and the replica says so itself.
func (s *Sentinel) WaitPromoted(ctx context.Context, d time.Duration) error {
	return poll(ctx, d, "the replica promoted", func() bool {
		return Promoted(ctx, s.sentinel.Addr(), s.MasterName, s.Replica.Addr())
	})
}

// Stop stops the three servers and removes the sentinel's files.
func (s *Sentinel) Stop() {
	for _, r := range []*RedisServer{s.sentinel, s.Replica, s.Master} {
		if r != nil {
			r.Stop()
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// redisDo sends one command to addr and returns its error.
func redisDo(ctx context.Context, addr string, args ...any) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("cluster: %s %v: %w", addr, args[:2], err)
	}
	return nil
}

// infoHas reports whether INFO replication of addr contains field.
func infoHas(ctx context.Context, addr, field string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, field)
}

// poll calls cond every 10 ms until it holds, and fails after d.
func poll(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: timed out after %v waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
