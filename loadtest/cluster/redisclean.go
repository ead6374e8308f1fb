package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// CleanRedis deletes every key that starts with "<prefix>" (the cache
// namespaces of the replicas this run started), so runs leave nothing
// behind in a shared Redis.
func CleanRedis(redisURL, prefix string) error {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("cluster: redis cleanup: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rdb.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("cluster: redis cleanup: %w", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("cluster: redis cleanup: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("cluster: redis cleanup: %w", err)
	}
	return nil
}
