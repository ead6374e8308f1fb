package tiercache

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Mode selects which tiers a [Cache] uses.
type Mode int

const (
	// ModeTiered uses the in-process L1 and Redis L2, with invalidations
	// broadcast over Redis pub/sub. It is the zero value.
	ModeTiered Mode = iota
	// ModeL2Only uses Redis alone: every hit is a Redis round trip. It is the
	// classic cache-aside design and needs no invalidation channel.
	ModeL2Only
	// ModeL1Only uses the in-process LRU alone and no Redis at all. It is only
	// correct for a single replica: other replicas never hear of writes.
	ModeL1Only
)

// String returns the mode's configuration name.
func (m Mode) String() string {
	switch m {
	case ModeTiered:
		return "tiered"
	case ModeL2Only:
		return "redis"
	case ModeL1Only:
		return "local"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Options configures a [Cache]. The zero value of every field means the
// default named in its comment; [New] copies the struct and fills them in.
//
// Keys and group names: any string without NUL, in every Redis mode
// (standalone, Sentinel, Cluster); the empty key is a key, but the empty
// group is no group (InvalidateGroup refuses it). A key or group with NUL
// is refused with [ErrInvalidKey]. No two different (key, group) pairs
// share an entry, whatever separators their names hold, and in a Cluster
// every Redis key of one cache key carries one hash tag built from the
// escaped key, so braces in a key never split it over two slots. The
// Namespace may not hold '{' or '}' (docs/design.md §3.12).
type Options struct {
	// Namespace prefixes every Redis key and names the invalidation channel
	// ("<Namespace>:inval"), so several deployments can share one Redis.
	// Default "tiercache".
	Namespace string
	// ReplicaID identifies this instance in invalidation messages; its own
	// messages are ignored on receipt. Default "<hostname>-<pid>-<random>".
	ReplicaID string
	// Mode selects the tiers. Default ModeTiered.
	Mode Mode
	// Standalone declares that this process is the only replica: L1 is used
	// even while the invalidation channel is down. Default false.
	Standalone bool

	// L1Size bounds L1 by entry count. Default 10000.
	L1Size int
	// L1Shards is the number of LRUs L1 is split into by key hash, each
	// behind its own lock, so that hits on many cores do not queue on one
	// mutex; it is rounded up to a power of two. Default: one for
	// GOMAXPROCS of 2 or less (sharding costs a hash per hit), else four
	// per core up to 256.
	L1Shards int
	// L1Policy chooses what a full L1 evicts: [PolicyLRU] or [Policy2Q].
	// Default Policy2Q, which a scan does not flush.
	L1Policy L1Policy
	// FailSafeSize bounds, by entry count, the fail-safe store: the last
	// value read of each key (loaded, or read in L2), kept apart from L1
	// and L2 for reads with
	// [StaleIfError] (docs/design.md §3.16). Default L1Size; negative
	// disables it.
	FailSafeSize int
	// FailSafeL2TTL, when positive, makes every fill of a value (not a
	// not-found, not a group's page) also write a fail-safe copy of it in
	// Redis, under a key of its own in the value's hash slot, in the
	// fill's script or transaction, with this TTL; invalidations do not
	// delete it. A read with [StaleIfError] whose load fails and whose
	// replica holds no copy young enough reads it there, so a replica
	// that never read a key can still answer it stale (docs/design.md
	// §3.16). A copy older than the largest allowance read with is of no
	// use, so that allowance is the TTL to give. Default 0: no copies in
	// Redis, each replica has only its own store. Needs the store
	// (FailSafeSize not negative) and L2.
	FailSafeL2TTL time.Duration
	// L1TTL is the maximum age of an L1 entry: the staleness bound that
	// holds whatever fails. Default 30s.
	L1TTL time.Duration
	// L2TTL is the Redis TTL of a value. Default 1h.
	L2TTL time.Duration
	// GroupL2TTL is the Redis TTL of a value read with [InGroup]. Every
	// bump of the group orphans its pages in Redis, so they get a short
	// life of their own. Default 1m, at most L2TTL.
	GroupL2TTL time.Duration
	// NegativeTTL is the lifetime of a cached "not found", in both tiers.
	// Default 30s, capped at L1TTL for L1.
	NegativeTTL time.Duration
	// Jitter is the fraction by which each TTL is randomly shortened, so that
	// entries filled together do not expire together. Default 0.1; negative
	// disables jitter.
	Jitter float64
	// RefreshAhead is the last part of an L2 TTL in which a read refreshes
	// the value in the background, so a key that stays hot never expires on
	// the request path (docs/design.md §3.18): 0.1 refreshes a value read
	// in the last tenth of its TTL. One replica refreshes (the L2 lease
	// decides); the reader gets the current value at once. Default 0.1;
	// negative disables it.
	RefreshAhead float64

	// L2Timeout bounds every Redis call on the read path. Default 100ms.
	// The client must have ContextTimeoutEnabled for the bound to cut a
	// blocked socket read short; the circuit breaker bounds the rest.
	L2Timeout time.Duration
	// WriteTimeout bounds each Redis call of an invalidation (the delete and
	// the publish). It is long on purpose: a Redis that is slow but alive
	// (a slow script, a fork, a failover pause) should take the
	// invalidation before the write is answered, since a queued one reaches
	// other replicas only when the retry gets through. A Redis that is down
	// refuses connections at once and costs no wait. Invalidations are not
	// subject to the circuit breaker. Default 5s. The client's own
	// ReadTimeout must not be shorter, or it cuts the wait first.
	WriteTimeout time.Duration
	// MinReplicasAck is how many Redis replicas must acknowledge an
	// invalidation's delete and generation bump (WAIT) before it is done
	// (docs/design.md §3.15); with fewer, Invalidate returns ErrDeferred
	// wrapping ErrNotReplicated and retries. Default 0, automatic: 1 once
	// the master reports a connected replica (and as long as it is the
	// same master), else none. NoReplicasAck never waits.
	MinReplicasAck int
	// ReplicaAckTimeout bounds the WAIT for MinReplicasAck. Default 20ms.
	ReplicaAckTimeout time.Duration
	// OnMasterChange, if set, is called (on a goroutine of its own) when
	// the Redis master this cache writes to turns out to be another server
	// than before (a different run_id): a failover or a restart may have
	// lost acknowledged invalidations, which a caller with an outbox
	// replays. Only the automatic MinReplicasAck looks. Default none.
	OnMasterChange func()
	// LoadTimeout bounds a shared load, which runs detached from any one
	// caller's context. Default 5s.
	LoadTimeout time.Duration
	// LeaseTTL is how long a loader holds the cross-replica lease on a key.
	// Default 5s.
	LeaseTTL time.Duration
	// LeaseWait is how long a caller that found another replica's lease
	// waits for the value to appear in L2 before it loads by itself.
	// Default 1s.
	LeaseWait time.Duration
	// LeasePoll is the interval at which a waiting caller re-reads L2.
	// Default 5ms.
	LeasePoll time.Duration
	// ScriptFreeMiss takes the lease and fills L2 with plain commands and a
	// WATCH transaction instead of Lua scripts (docs/design.md §3.4). A
	// single key's miss keeps the connection that took its lease until the
	// fill, two round trips as with the scripts, and at most half of the
	// client's PoolSize are held at once; a batch's misses, and a miss that
	// finds none free, fill in one more round trip. Redis spends about a
	// quarter of the scripts' command time per miss and about 0.8x their
	// process CPU (README, "The miss path without Lua"). Off by default.
	// Releasing a lease that was not held and the eager refresh's lease
	// stay scripts, since each is one compare step that runs rarely. Batch
	// fills (GetMany) on one node go in one transaction for all keys. A
	// Redis ACL must then allow WATCH, MULTI, EXEC and UNWATCH.
	ScriptFreeMiss bool

	// BreakerThreshold is the number of consecutive Redis failures that open
	// the circuit breaker. Default 5.
	BreakerThreshold int
	// BreakerCooldown is how long the breaker stays open before it lets one
	// probe through. Default 1s.
	BreakerCooldown time.Duration

	// PingTimeout is how long the subscription may stay silent (no message
	// and no answer to the freshness pings) before it counts as broken: L1
	// is flushed and the subscriber reconnects. A shorter silence only
	// bypasses L1 (see StalenessBound). Default 3s.
	PingTimeout time.Duration
	// FreshnessInterval is how often the subscriber sends PING on the
	// subscription connection to prove that this replica has applied every
	// invalidation published before the ping (docs/design.md §3.13). Default 5ms.
	FreshnessInterval time.Duration
	// StalenessBound is how far behind the invalidation stream L1 may be:
	// while the newest answered ping was sent longer ago than this, L1 is
	// bypassed (not flushed), group generations are read from Redis, and no
	// read joins a load that began longer ago than this. Default 25ms; it
	// must exceed FreshnessInterval.
	StalenessBound time.Duration
	// TopologyInterval is how often, on a Redis Cluster, the subscriber asks
	// the node its subscription is on whether that node still is the master
	// of the channel's slot; when it is not (a failover, a slot migration)
	// the subscription counts as broken and moves to the new master
	// (docs/design.md §3.13). Default 200ms.
	TopologyInterval time.Duration
	// ReconnectBackoff is the longest wait between subscription attempts.
	// Default 1s.
	ReconnectBackoff time.Duration
	// RetryQueueSize bounds the keys and groups waiting for a failed
	// invalidation to be retried. Default 100000.
	RetryQueueSize int
	// RetryInterval is how often failed invalidations are retried.
	// Default 100ms.
	RetryInterval time.Duration

	// Logger receives warnings and errors. Default: discard.
	Logger *slog.Logger
	// Tracer, if set, sees every [Cache.Get] and [Cache.GetInfo] (and, if
	// it is a [ManyTracer], every [Cache.GetMany] and [Cache.GetManyInfo]),
	// so that a tracing library can give each read a span; package
	// tiercacheotel implements it with OpenTelemetry. Default none: a read
	// then pays one nil check.
	Tracer Tracer

	hooks hooks
}

// Errors returned by [New] for nonsense options.
var errOptions = errors.New("tiercache: invalid options")

func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Namespace == "" {
		o.Namespace = "tiercache"
	}
	if o.ReplicaID == "" {
		host, _ := os.Hostname()
		o.ReplicaID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomToken()[:8])
	}
	if o.L1Size == 0 {
		o.L1Size = 10000
	}
	if o.FailSafeSize == 0 {
		o.FailSafeSize = o.L1Size
	}
	if o.L1Shards == 0 {
		o.L1Shards = 1
		if p := runtime.GOMAXPROCS(0); p > 2 {
			o.L1Shards = min(256, 4*p)
		}
	}
	if o.L1Shards > 0 {
		o.L1Shards = 1 << bits.Len(uint(o.L1Shards-1))
	}
	def(&o.L1TTL, 30*time.Second)
	def(&o.L2TTL, time.Hour)
	def(&o.NegativeTTL, 30*time.Second)
	def(&o.GroupL2TTL, min(time.Minute, o.L2TTL))
	def(&o.L2Timeout, 100*time.Millisecond)
	def(&o.WriteTimeout, 5*time.Second)
	def(&o.LoadTimeout, 5*time.Second)
	def(&o.ReplicaAckTimeout, 20*time.Millisecond)
	def(&o.LeaseTTL, 5*time.Second)
	def(&o.LeaseWait, time.Second)
	def(&o.LeasePoll, 5*time.Millisecond)
	def(&o.BreakerCooldown, time.Second)
	def(&o.PingTimeout, 3*time.Second)
	def(&o.FreshnessInterval, 5*time.Millisecond)
	def(&o.StalenessBound, 25*time.Millisecond)
	def(&o.ReconnectBackoff, time.Second)
	def(&o.TopologyInterval, 200*time.Millisecond)
	def(&o.RetryInterval, 100*time.Millisecond)
	if o.Jitter == 0 {
		o.Jitter = 0.1
	} else if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.RefreshAhead == 0 {
		o.RefreshAhead = 0.1
	} else if o.RefreshAhead < 0 {
		o.RefreshAhead = 0
	}
	if o.BreakerThreshold == 0 {
		o.BreakerThreshold = 5
	}
	if o.RetryQueueSize == 0 {
		o.RetryQueueSize = 100000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.Mode < ModeTiered || o.Mode > ModeL1Only:
		return fmt.Errorf("%w: unknown mode %d", errOptions, o.Mode)
	case strings.ContainsAny(o.Namespace, "{}"):
		return fmt.Errorf("%w: Namespace %q holds a brace, which would change every key's Cluster hash tag", errOptions, o.Namespace)
	case o.L1Size < 0:
		return fmt.Errorf("%w: L1Size %d is negative", errOptions, o.L1Size)
	case o.L1Policy < PolicyDefault || o.L1Policy > Policy2Q:
		return fmt.Errorf("%w: unknown L1Policy %d", errOptions, o.L1Policy)
	case o.L1Shards < 0 || o.L1Shards > 4096:
		return fmt.Errorf("%w: L1Shards %d, want 1 to 4096", errOptions, o.L1Shards)
	case o.Jitter >= 1:
		return fmt.Errorf("%w: Jitter %v must be below 1", errOptions, o.Jitter)
	case o.RefreshAhead >= 1:
		return fmt.Errorf("%w: RefreshAhead %v must be below 1", errOptions, o.RefreshAhead)
	case o.BreakerThreshold < 0 || o.RetryQueueSize < 0:
		return fmt.Errorf("%w: negative BreakerThreshold or RetryQueueSize", errOptions)
	case o.StalenessBound <= o.FreshnessInterval && o.StalenessBound > 0:
		return fmt.Errorf("%w: StalenessBound %v must exceed FreshnessInterval %v", errOptions, o.StalenessBound, o.FreshnessInterval)
	case o.FailSafeL2TTL > 0 && o.FailSafeSize < 0:
		return fmt.Errorf("%w: FailSafeL2TTL %v needs the fail-safe store, which a negative FailSafeSize disables", errOptions, o.FailSafeL2TTL)
	case o.Mode == ModeTiered && o.L1TTL > o.L2TTL:
		return fmt.Errorf("%w: L1TTL %v exceeds L2TTL %v", errOptions, o.L1TTL, o.L2TTL)
	}
	for name, d := range map[string]time.Duration{
		"L1TTL": o.L1TTL, "L2TTL": o.L2TTL, "NegativeTTL": o.NegativeTTL,
		"L2Timeout": o.L2Timeout, "WriteTimeout": o.WriteTimeout, "LoadTimeout": o.LoadTimeout, "ReplicaAckTimeout": o.ReplicaAckTimeout, "LeaseTTL": o.LeaseTTL,
		"LeaseWait": o.LeaseWait, "LeasePoll": o.LeasePoll, "BreakerCooldown": o.BreakerCooldown,
		"PingTimeout": o.PingTimeout, "GroupL2TTL": o.GroupL2TTL, "FreshnessInterval": o.FreshnessInterval, "StalenessBound": o.StalenessBound,
		"ReconnectBackoff": o.ReconnectBackoff, "RetryInterval": o.RetryInterval, "TopologyInterval": o.TopologyInterval,
		"FailSafeL2TTL": o.FailSafeL2TTL,
	} {
		if d < 0 {
			return fmt.Errorf("%w: %s %v is negative", errOptions, name, d)
		}
	}
	return nil
}
