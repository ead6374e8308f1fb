package cluster

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedisServerDir: a replica's working directory (where the RDB of its
// full sync goes) is its own while it runs; Stop removes it, and Start
// makes another and serves again.
func TestRedisServerDir(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m, err := StartRedis(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	r, err := StartRedisReplica(ctx, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	first := r.dir
	if st, err := os.Stat(first); err != nil || !st.IsDir() {
		t.Fatalf("the replica's directory %q: %v", first, err)
	}
	r.Stop()
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("%s after Stop: %v, want it removed", first, err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(ctx).Err(); err != nil || r.dir == "" || r.dir == first {
		t.Errorf("started again: ping %v, directory %q (was %q); want an answer from a directory of its own", err, r.dir, first)
	}
	mdir := m.dir
	m.Stop()
	if _, err := os.Stat(mdir); !os.IsNotExist(err) {
		t.Errorf("%s after the master's Stop: %v, want it removed", mdir, err)
	}
}
