package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server: no persistence, on a loopback
// port of its own, with the DEBUG command allowed from loopback (for
// DEBUG SLEEP), which a shared Redis must not have.
type RedisServer struct {
	addr   string
	output io.Writer
	proc   *Process
	extra  []string // more arguments of redis-server (--replicaof)
	conf   string   // a configuration file, first on the command line (a sentinel's)
	// dir is its working directory while it runs (made by Start, removed
	// by Stop), where a replica writes the RDB of a full sync; "" for a
	// sentinel, whose configuration file's directory is its own.
	dir    string
	ownDir bool
}

// StartRedis starts a redis-server and waits until it accepts
// connections. It gets SIGTERM when ctx ends.
func StartRedis(ctx context.Context, output io.Writer) (*RedisServer, error) {
	return startRedis(ctx, output, nil, "")
}

// StartRedisReplica starts a redis-server replicating from master and
// waits until its link is up and the master counts it, so that a WAIT for
// one replica is answered from the first write on.
func StartRedisReplica(ctx context.Context, output io.Writer, master *RedisServer) (*RedisServer, error) {
	host, port, _ := net.SplitHostPort(master.addr)
	s, err := startRedis(ctx, output, []string{"--replicaof", host, port}, "")
	if err != nil {
		return nil, err
	}
	if err := waitReplicaLink(ctx, master.addr, s.addr); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func startRedis(ctx context.Context, output io.Writer, extra []string, conf string) (*RedisServer, error) {
	// redis-server cannot pick its own port and say which (port 0 turns
	// TCP off), so this one probes for a free port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cluster: redis port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	// A replica writes the RDB of its full sync to its directory, and a
	// server loads dump.rdb from it when it starts: its own, never the
	// caller's working directory.
	s := &RedisServer{addr: addr, output: output, extra: extra, conf: conf, ownDir: conf == ""}
	if err := s.Start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReplicaLink waits until the replica reports its link to the master
// up and the master reports a connected replica.
func waitReplicaLink(ctx context.Context, master, replica string) error {
	m := redis.NewClient(&redis.Options{Addr: master})
	defer m.Close()
	r := redis.NewClient(&redis.Options{Addr: replica})
	defer r.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mi, _ := m.Info(ctx, "replication").Result()
		ri, _ := r.Info(ctx, "replication").Result()
		if strings.Contains(ri, "master_link_status:up") && !strings.Contains(mi, "connected_slaves:0") {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster: replica %s not linked to %s\n%s", replica, master, ri)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is host:port.
func (s *RedisServer) Addr() string { return s.addr }

// URL is a REDIS_URL of the server.
func (s *RedisServer) URL() string { return "redis://" + s.addr + "/0" }

// Start starts the server again, on its port, after Kill or Stop. The
// server gets SIGTERM when ctx ends (or on Stop).
func (s *RedisServer) Start(ctx context.Context) error {
	if s.ownDir && s.dir == "" {
		dir, err := os.MkdirTemp("", "loadtest-redis-")
		if err != nil {
			return fmt.Errorf("cluster: redis dir: %w", err)
		}
		s.dir = dir
	}
	_, port, _ := net.SplitHostPort(s.addr)
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args, []string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--enable-debug-command", "local", "--loglevel", "warning",
	}...)
	if s.dir != "" {
		args = append(args, "--dir", s.dir)
	}
	args = append(args, s.extra...)
	p, err := Start(ctx, "redis-server", args, nil, s.output, nil)
	if err != nil {
		return err
	}
	s.proc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("cluster: redis-server exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("cluster: redis-server not answering on %s\n%s", s.addr, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill SIGKILLs the server.
func (s *RedisServer) Kill() { s.proc.Kill() }

// Stop SIGTERMs the server, waits for it and removes its working
// directory: a server started again starts empty.
func (s *RedisServer) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// Port is the server's port.
func (s *RedisServer) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}
