package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/tiercache/productcache/internal/tcpproxy"
)

// Network stages a slower network on loopback: a proxy in front of Redis
// and one in front of PostgreSQL, each adding a fixed latency to every
// chunk in each direction, so a round trip costs at least twice that. The
// replicas are given the proxies' URLs; tools that only set up or check
// (seeding, the lost-write check, the CPU meter) keep the direct ones.
type Network struct {
	redis, pg             *tcpproxy.Proxy
	redisURL, databaseURL string
}

// NewNetwork starts the proxies to the servers of redisURL and databaseURL
// (either may be empty) with latency each way.
func NewNetwork(redisURL, databaseURL string, latency time.Duration) (*Network, error) {
	n := &Network{}
	var err error
	if redisURL != "" {
		if n.redis, n.redisURL, err = proxyURL(redisURL, latency); err != nil {
			return nil, fmt.Errorf("cluster: network: REDIS_URL: %w", err)
		}
	}
	if databaseURL != "" {
		if n.pg, n.databaseURL, err = proxyURL(databaseURL, latency); err != nil {
			n.Close()
			return nil, fmt.Errorf("cluster: network: DATABASE_URL: %w", err)
		}
	}
	return n, nil
}

// proxyURL starts a proxy to the host of u and returns u through it.
func proxyURL(raw string, latency time.Duration) (*tcpproxy.Proxy, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Port() == "" {
		return nil, "", errors.New("want a URL with a host and a port")
	}
	p, err := tcpproxy.New(u.Host)
	if err != nil {
		return nil, "", err
	}
	p.SetLatency(latency)
	u.Host = p.Addr()
	return p, u.String(), nil
}

// RedisURL is Redis through the proxy ("" if none was given).
func (n *Network) RedisURL() string { return n.redisURL }

// DatabaseURL is PostgreSQL through the proxy ("" if none was given).
func (n *Network) DatabaseURL() string { return n.databaseURL }

// Close stops both proxies and cuts every connection they carry.
func (n *Network) Close() {
	for _, p := range []*tcpproxy.Proxy{n.redis, n.pg} {
		if p != nil {
			p.Close()
		}
	}
}
