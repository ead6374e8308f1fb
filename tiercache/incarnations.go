package tiercache

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The incarnation registry makes a lost first message of a publisher
// incarnation a gap (docs/design.md §3.6). A publisher adds its incarnation
// to a sorted set in Redis before its first publish; a subscriber reads the
// set before it subscribes. An incarnation missing from that snapshot
// registered after it, so every message it sent came after the read, and
// those sent after the subscription was confirmed must all arrive: the first
// one seen must be number 1, or some were lost. One it saw that started
// earlier may have sent its first messages before the subscription, so its
// first number seen is taken as it is (as before). No clock is compared
// between machines: the score, the publisher's wall clock, only decides when
// an entry is pruned, and a wrongly pruned entry costs one needless flush
// (its incarnation looks new), never a missed gap.
const (
	registerEvery   = 10 * time.Minute // a publisher refreshes its entry this often
	registryHorizon = time.Hour        // entries older than this are pruned
)

// registryKey is the sorted set of publisher incarnations; its hash tag
// puts it in the channel's slot, so that on a Cluster the registration
// rides in the publish's pipeline to the same master.
func (b *bus) registryKey() string { return b.opt.Namespace + ":incarnations{" + b.channel + "}" }

// self is this incarnation as observe keys publishers.
func (b *bus) self() string { return b.opt.ReplicaID + "\x00" + b.inc }

// register queues on p, ahead of the publish, the registration of this
// incarnation if it has not registered in the last registerEvery; the
// caller holds sendMu and calls registered once p succeeded.
func (b *bus) register(ctx context.Context, p redis.Pipeliner) (registered func()) {
	now := b.clock()
	if b.registered && now-b.registeredAt < int64(registerEvery) {
		return func() {}
	}
	wall := time.Now().Unix()
	oldest := strconv.FormatInt(wall-int64(registryHorizon/time.Second), 10)
	p.ZAdd(ctx, b.registryKey(), redis.Z{Score: float64(wall), Member: b.self()})
	p.ZRemRangeByScore(ctx, b.registryKey(), "-inf", "("+oldest)
	return func() { b.registered, b.registeredAt = true, now }
}

// registry reads the incarnations registered so far; the subscriber calls
// it before it subscribes.
func (b *bus) registry(ctx context.Context) (map[string]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opt.L2Timeout*5)
	defer cancel()
	members, err := b.rdb.ZRange(ctx, b.registryKey(), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	known := make(map[string]struct{}, len(members))
	for _, m := range members {
		known[m] = struct{}{}
	}
	return known, nil
}
