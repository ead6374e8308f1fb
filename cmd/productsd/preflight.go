package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPreflight checks once, when Redis first answers, that its user may
// do what tiercache does: read keys of the namespace, run scripts, and
// subscribe to the invalidation channel. A denial is logged as one error
// naming the missing permission; tiercache alone would only show the
// channel down in /readyz. It retries while Redis is unreachable, until
// ctx ends, and logs the first such failure (a TLS or DNS error says why).
func redisPreflight(ctx context.Context, rdb redis.UniversalClient, ns string, logger *slog.Logger) {
	for first := true; ; first = false {
		err := preflightOnce(ctx, rdb, ns)
		switch {
		case err == nil:
			logger.Debug("productsd: redis permissions ok")
			return
		case isDenied(err):
			logger.Error("productsd: redis denies a command the cache needs (see the ACL rule in README.md)", "err", err)
			return
		case first && ctx.Err() == nil:
			logger.Warn("productsd: redis not reachable yet; serving from PostgreSQL meanwhile", "err", err)
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func preflightOnce(ctx context.Context, rdb redis.UniversalClient, ns string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := rdb.Get(ctx, ns+":preflight").Err(); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	// The SHA of "return 1": NOSCRIPT when allowed, NOPERM when not.
	if err := rdb.EvalSha(ctx, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", nil).Err(); err != nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return err
	}
	var ps *redis.PubSub
	if _, ok := rdb.(*redis.ClusterClient); ok {
		ps = rdb.SSubscribe(ctx, ns+":inval")
	} else {
		ps = rdb.Subscribe(ctx, ns+":inval")
	}
	defer ps.Close()
	_, err := ps.Receive(ctx)
	return err
}

// isDenied reports whether err is Redis refusing the user, not a network
// failure.
func isDenied(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	for _, p := range []string{"NOPERM", "WRONGPASS", "NOAUTH"} {
		if strings.HasPrefix(re.Error(), p) {
			return true
		}
	}
	return false
}
