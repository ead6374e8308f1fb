package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of a real server that a test can switch
// off and on, to stage a dependency that is down at start or goes away.
// While off it accepts connections and closes them at once, and it cuts
// the connections it was carrying.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	up    bool                  // guarded by mu
	conns map[net.Conn]struct{} // guarded by mu: both ends of open pairs
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port), off if up is false, and
// stops it when t ends.
func NewProxy(t testing.TB, target string, up bool) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, up: up, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetUp switches the proxy on or off; off cuts every open connection.
func (p *Proxy) SetUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.SetUp(false)
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	up := p.up
	p.mu.Unlock()
	if !up {
		_ = c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if !p.up {
		p.mu.Unlock()
		_ = c.Close()
		_ = s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Add(2)
	pipe := func(dst, src net.Conn) {
		defer pipes.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(c, s)
	go pipe(s, c)
	pipes.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}
