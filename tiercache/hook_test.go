package tiercache

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// countingHook counts round trips: single commands and whole pipelines.
// countingHook counts the round trips a client makes: each command or
// pipeline once. It leaves out INFO, which the replica probe
// (docs/design.md §3.15) sends from the retry loop about once a second on
// the same client: a starved machine can land one inside a counted
// window (TestGroupInvalidation saw 3 round trips for 2 so).
type countingHook struct{ n *atomic.Int64 }

func (h countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "info" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

var _ redis.Hook = countingHook{}
