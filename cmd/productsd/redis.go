package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisConfig is REDIS_URL parsed for REDIS_MODE: exactly one of the three
// option sets is non-nil.
type redisConfig struct {
	single   *redis.Options         // REDIS_MODE single: ParseURL
	cluster  *redis.ClusterOptions  // REDIS_MODE cluster: ParseClusterURL
	failover *redis.FailoverOptions // REDIS_MODE sentinel: ParseFailoverURL
	// onSwitch, if set, is called when the sentinels announce a new
	// master (+switch-master): the outbox replays its window.
	onSwitch func()
}

// parseRedis parses rawURL the way mode wants it and adds the CA of
// caFile (PEM, may be empty) to the TLS roots. An error names the setting
// at fault.
func parseRedis(mode, rawURL, caFile string) (*redisConfig, error) {
	var (
		rc  redisConfig
		err error
		tc  **tls.Config
	)
	switch mode {
	case "cluster":
		rc.cluster, err = redis.ParseClusterURL(rawURL)
		if err == nil {
			tc = &rc.cluster.TLSConfig
		}
	case "sentinel":
		rc.failover, err = redis.ParseFailoverURL(rawURL)
		if err == nil && rc.failover.MasterName == "" {
			err = errors.New("sentinel mode needs the master's name: add ?master_name=NAME")
		}
		if err == nil {
			tc = &rc.failover.TLSConfig
		}
	default:
		rc.single, err = redis.ParseURL(rawURL)
		if err == nil {
			tc = &rc.single.TLSConfig
		}
	}
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: not a valid URL for REDIS_MODE %s: %v", mode, err)
	}
	if caFile == "" {
		return &rc, nil
	}
	if *tc == nil {
		return nil, fmt.Errorf("REDIS_CA_FILE: set, but REDIS_URL is not rediss:// (TLS)")
	}
	roots, err := loadCA(caFile)
	if err != nil {
		return nil, fmt.Errorf("REDIS_CA_FILE: %v", err)
	}
	(*tc).RootCAs = roots
	return &rc, nil
}

// loadCA reads a PEM bundle into a certificate pool.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// newClient returns the go-redis client of the mode, with the timeouts a
// cache needs (see redisTimeouts), and a function that stops what the
// client needs besides itself (close the client first). It does not
// connect yet.
func (rc *redisConfig) newClient(logger *slog.Logger) (redis.UniversalClient, func()) {
	switch {
	case rc.cluster != nil:
		o := *rc.cluster
		redisTimeouts(&o.ContextTimeoutEnabled, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries)
		return redis.NewClusterClient(&o), func() {}
	case rc.failover != nil:
		o := *rc.failover
		redisTimeouts(&o.ContextTimeoutEnabled, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries)
		rdb := redis.NewFailoverClient(&o)
		return rdb, watchMaster(rdb, &o, logger, rc.onSwitch)
	}
	return redis.NewClient(redisOptions(rc.single)), func() {}
}

// describe is the client's topology for the log: mode and addresses, no
// credentials.
func (rc *redisConfig) describe() string {
	switch {
	case rc.cluster != nil:
		return "cluster " + strings.Join(rc.cluster.Addrs, ",")
	case rc.failover != nil:
		return "sentinel " + rc.failover.MasterName + "@" + strings.Join(rc.failover.SentinelAddrs, ",")
	}
	return "single " + rc.single.Addr
}

// redisOptions copies o with the timeouts a cache needs.
func redisOptions(o *redis.Options) *redis.Options {
	c := *o
	redisTimeouts(&c.ContextTimeoutEnabled, &c.DialTimeout, &c.ReadTimeout, &c.WriteTimeout, &c.PoolTimeout, &c.DialerRetries)
	return &c
}

// redisTimeouts fills the timeouts a cache needs, for every mode's
// options: every call is bounded by its context, and nothing waits long on
// a dead server. A value set in REDIS_URL (dial_timeout=...) is kept.
//
// The socket timeouts are only a backstop: tiercache puts its own deadline
// on every call (100ms for a read, 5s for an invalidation's delete and
// publish), and with ContextTimeoutEnabled the earlier of the two wins. So
// they must not be shorter than the invalidation's, or a Redis that stalls
// for a second would cut the delete short and leave the write's
// invalidation queued while other replicas serve the old value.
// socketTimeout is the client's read and write timeout: above tiercache's
// WriteTimeout (5s).
const socketTimeout = 6 * time.Second

func redisTimeouts(ctxTimeout *bool, dial, read, write, pool *time.Duration, dialRetries *int) {
	*ctxTimeout = true
	if *dial == 0 {
		*dial = time.Second
	}
	if *read == 0 {
		*read = socketTimeout
	}
	if *write == 0 {
		*write = socketTimeout
	}
	if *pool == 0 {
		*pool = time.Second
	}
	if *dialRetries == 0 {
		*dialRetries = 1 // the cache has its own breaker; fail fast
	}
}
