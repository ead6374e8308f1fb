package testenv

import (
	"testing"

	"github.com/tiercache/productcache/internal/tcpproxy"
)

// Proxy is a TCP proxy in front of a real server that a test can switch
// off and on, to stage a dependency that is down at start or goes away.
// While off it accepts connections and closes them at once, and it cuts
// the connections it was carrying.
type Proxy struct {
	p *tcpproxy.Proxy
}

// NewProxy starts a proxy to target (host:port), off if up is false, and
// stops it when t ends.
func NewProxy(t testing.TB, target string, up bool) *Proxy {
	t.Helper()
	p, err := tcpproxy.New(target)
	if err != nil {
		t.Fatalf("testenv: proxy listen: %v", err)
	}
	p.SetCut(!up)
	t.Cleanup(p.Close)
	return &Proxy{p: p}
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.p.Addr() }

// SetUp switches the proxy on or off; off cuts every open connection.
func (p *Proxy) SetUp(up bool) { p.p.SetCut(!up) }
