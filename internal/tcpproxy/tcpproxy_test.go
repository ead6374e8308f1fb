package tcpproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := r.ReadString('\n')
	return time.Since(start), err
}

// TestProxy: the proxy forwards, adds its latency each way, cuts open
// connections and refuses new ones while cut, and carries again after.
func TestProxy(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := roundTrip(c, r); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.SetLatency(50 * time.Millisecond)
	if d, err := roundTrip(c, r); err != nil || d < 100*time.Millisecond {
		t.Fatalf("with 50ms each way: round trip %v, %v; want at least 100ms", d, err)
	}
	p.SetLatency(0)
	p.SetCut(true)
	if _, err := roundTrip(c, r); err == nil {
		t.Fatal("an open connection survived the cut")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(c2, bufio.NewReader(c2)); err == nil {
			t.Fatal("a new connection was carried while cut")
		}
		c2.Close()
	}
	p.SetCut(false)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := roundTrip(c3, bufio.NewReader(c3)); err != nil {
		t.Fatalf("after the cut was lifted: %v", err)
	}
}
