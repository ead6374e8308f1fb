package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
	"github.com/tiercache/productcache/loadtest/cluster"
)

// TestNetwork: Redis and PostgreSQL answer through the network's proxies,
// and a round trip through them costs at least the latency both ways.
func TestNetwork(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	const latency = 20 * time.Millisecond
	n, err := cluster.NewNetwork(testenv.RedisURL(), testenv.DatabaseURL(), latency)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.RedisURL() == testenv.RedisURL() || n.DatabaseURL() == testenv.DatabaseURL() {
		t.Fatalf("URLs not through the proxies: %s %s", n.RedisURL(), n.DatabaseURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(n.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis through the proxy: %v", err)
	}
	start := time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil || time.Since(start) < 2*latency {
		t.Fatalf("PING took %v (%v), want at least %v", time.Since(start), err, 2*latency)
	}
	conn, err := pgx.Connect(ctx, n.DatabaseURL())
	if err != nil {
		t.Fatalf("postgres through the proxy: %v", err)
	}
	defer conn.Close(ctx)
	start = time.Now()
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || time.Since(start) < 2*latency {
		t.Fatalf("SELECT 1 took %v (%v), want at least %v", time.Since(start), err, 2*latency)
	}
	if _, err := cluster.NewNetwork("redis://nohostport", "", latency); err == nil {
		t.Fatal("a URL without a port: got nil error")
	}
}
