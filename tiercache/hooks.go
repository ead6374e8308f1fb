package tiercache

import "time"

// hooks let tests pause the cache at the points where races happen, so the
// races can be staged with channel handshakes instead of sleeps. All are nil
// outside tests.
type hooks struct {
	afterL2Read      func(key string) // a fill read L2, before its L1 install
	beforeL2Delete   func()           // an invalidation is about to delete in L2
	afterL2Delete    func()           // an invalidation deleted in L2 (or failed to), before L1
	afterLocal       func()           // an invalidation's local step is done, before the publish
	beforeSubscribe  func()           // the subscriber is about to (re)subscribe
	beforeApply      func()           // the subscriber received something, before applying it
	channelUp        func()           // the subscription was confirmed
	channelDown      func()           // the subscription broke
	closeWaiting     func()           // Close found an invalidation under way and is about to wait for it
	refreshDone      func(key string) // an eager refresh ended, whatever it did
	onMessage        func(src string, keys []string)
	dropMessage      func(payload string) bool // true: the subscriber never sees this message
	now              func() int64              // replaces the monotonic clock (nanoseconds)
	genSeed          func() uint64             // replaces the random seed of a lost or new group counter
	wallClock        func() time.Time          // replaces the wall clock that stamps messages (lag statistics only)
	beforeSend       func()                    // a batch of invalidations is about to be published
	joined           func(lead bool)           // an invalidation joined a publish batch (lead: it opened it)
	unbatched        bool                      // publish each invalidation alone (the baseline of a benchmark)
	neverIdle        bool                      // the pinger keeps its pace without reads
	fillChecked      func(key string)          // a script-free L2 fill found its lease standing, before its EXEC
	beforeLeaseWatch func(key string)          // a held lease's SET NX was answered; its WATCH goes in a second round trip after this
}

// runHook runs h if it is set.
func runHook(h func()) {
	if h != nil {
		h()
	}
}
