package main

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// TestRedisConfigEveryMode: each REDIS_MODE parses its URL form, takes
// TLS (rediss://) with the CA of REDIS_CA_FILE, keeps ACL credentials, and
// gets the cache's short timeouts unless the URL sets its own.
func TestRedisConfigEveryMode(t *testing.T) {
	t.Parallel()
	ca := testenv.NewTLSFiles(t).CA
	tests := []struct {
		mode, url string
		check     func(t *testing.T, c redis.UniversalClient) (*tls.Config, string, time.Duration, time.Duration)
	}{
		{"single", "rediss://app:pw@127.0.0.1:6380/0", func(t *testing.T, c redis.UniversalClient) (*tls.Config, string, time.Duration, time.Duration) {
			o := c.(*redis.Client).Options()
			return o.TLSConfig, o.Username + ":" + o.Password, o.ReadTimeout, o.DialTimeout
		}},
		{"cluster", "rediss://app:pw@127.0.0.1:7000?addr=127.0.0.1:7001&dial_timeout=3s", func(t *testing.T, c redis.UniversalClient) (*tls.Config, string, time.Duration, time.Duration) {
			o := c.(*redis.ClusterClient).Options()
			if len(o.Addrs) != 2 {
				t.Errorf("cluster addrs %v", o.Addrs)
			}
			return o.TLSConfig, o.Username + ":" + o.Password, o.ReadTimeout, o.DialTimeout
		}},
		{"sentinel", "rediss://sentinel:spw@127.0.0.1:26379/0?addr=127.0.0.1:26380&master_name=m&username=app&password=pw&dial_timeout=3s", nil},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			rc, err := parseRedis(tt.mode, tt.url, ca)
			if err != nil {
				t.Fatal(err)
			}
			if tt.mode == "sentinel" {
				// A FailoverClient does not expose its options: check what
				// newClient copies from.
				o := rc.failover
				if o.TLSConfig == nil || o.TLSConfig.RootCAs == nil || o.Username != "app" || o.SentinelUsername != "sentinel" || o.MasterName != "m" {
					t.Fatalf("sentinel options: %+v", o)
				}
				c, stop := rc.newClient(nil)
				_ = c.Close()
				stop()
				return
			}
			c, stop := rc.newClient(nil)
			defer stop()
			defer c.Close()
			tc, cred, read, dial := tt.check(t, c)
			if tc == nil || tc.RootCAs == nil {
				t.Errorf("TLS config %v: want the CA of REDIS_CA_FILE", tc)
			}
			if cred != "app:pw" {
				t.Errorf("credentials %q, want app:pw", cred)
			}
			if read != socketTimeout {
				t.Errorf("read timeout %v, want %v, above tiercache's WriteTimeout", read, socketTimeout)
			}
			if want := map[string]time.Duration{"single": time.Second, "cluster": 3 * time.Second}[tt.mode]; dial != want {
				t.Errorf("dial timeout %v, want %v", dial, want)
			}
		})
	}
}
