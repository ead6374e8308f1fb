package tiercache

// hooks let tests pause the cache at the points where races happen, so the
// races can be staged with channel handshakes instead of sleeps. All are nil
// outside tests.
type hooks struct {
	afterL2Read     func(key string) // a fill read L2, before its L1 install
	afterL2Delete   func()           // an invalidation deleted in L2, before L1
	beforeSubscribe func()           // the subscriber is about to (re)subscribe
	channelUp       func()           // the subscription was confirmed
	channelDown     func()           // the subscription broke
	onMessage       func(src string, keys []string)
	now             func() int64 // replaces the coarse clock
}
