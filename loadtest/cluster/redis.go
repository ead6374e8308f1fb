package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RedisServer is a private redis-server: no persistence, on a loopback
// port of its own, with the DEBUG command allowed from loopback (for
// DEBUG SLEEP), which a shared Redis must not have.
type RedisServer struct {
	addr   string
	output io.Writer
	proc   *Process
}

// StartRedis starts a redis-server and waits until it accepts
// connections. It gets SIGTERM when ctx ends.
func StartRedis(ctx context.Context, output io.Writer) (*RedisServer, error) {
	// redis-server cannot pick its own port and say which (port 0 turns
	// TCP off), so this one probes for a free port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cluster: redis port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &RedisServer{addr: addr, output: output}
	return s, s.Start(ctx)
}

// Addr is host:port.
func (s *RedisServer) Addr() string { return s.addr }

// URL is a REDIS_URL of the server.
func (s *RedisServer) URL() string { return "redis://" + s.addr + "/0" }

// Start starts the server again, on its port, after Kill or Stop. The
// server gets SIGTERM when ctx ends (or on Stop).
func (s *RedisServer) Start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(s.addr)
	p, err := Start(ctx, "redis-server", []string{
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--enable-debug-command", "local", "--loglevel", "warning",
	}, nil, s.output, nil)
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

// Stop SIGTERMs the server and waits for it.
func (s *RedisServer) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
}

// Port is the server's port.
func (s *RedisServer) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}
