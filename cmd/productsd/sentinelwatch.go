package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// masterWatch closes a FailoverClient's connections to a master the
// sentinels have just demoted. go-redis drops its command connections on
// +switch-master but keeps pub/sub ones: tiercache's invalidation
// subscription would stay on the old master, which answers its pings
// while every writer publishes to the new one, until the sentinels
// reconfigure the old master (seconds later) and kill its clients. Closed
// at once, the subscription re-attaches to the new master.
type masterWatch struct {
	master   string
	log      *slog.Logger
	onSwitch func() // may be nil

	mu    sync.Mutex
	conns map[*trackedConn]struct{} // guarded by mu: every open connection

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// watchMaster hooks rdb's dials and listens for +switch-master on every
// sentinel of o, and calls onSwitch (if not nil) after each switch. stop
// ends the listeners.
func watchMaster(rdb *redis.Client, o *redis.FailoverOptions, logger *slog.Logger, onSwitch func()) (stop func()) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &masterWatch{master: o.MasterName, log: logger, onSwitch: onSwitch, conns: make(map[*trackedConn]struct{}), cancel: cancel}
	rdb.AddHook(w)
	for _, addr := range o.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr: addr, Username: o.SentinelUsername, Password: o.SentinelPassword,
			TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout,
		})
		w.wg.Add(1)
		go w.listen(ctx, sc)
	}
	return func() {
		cancel()
		w.wg.Wait()
	}
}

// listen reads +switch-master events ("name oldip oldport newip newport")
// until ctx ends; the PubSub re-dials a sentinel that went away.
func (w *masterWatch) listen(ctx context.Context, sc *redis.SentinelClient) {
	defer w.wg.Done()
	defer sc.Close()
	ps := sc.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			f := strings.Fields(m.Payload)
			if len(f) == 5 && f[0] == w.master {
				w.closeTo(net.JoinHostPort(f[1], f[2]))
				if w.onSwitch != nil {
					w.onSwitch()
				}
			}
		}
	}
}

// closeTo closes every tracked connection to addr.
func (w *masterWatch) closeTo(addr string) {
	w.mu.Lock()
	var doomed []*trackedConn
	for c := range w.conns {
		if c.RemoteAddr().String() == addr {
			doomed = append(doomed, c)
		}
	}
	w.mu.Unlock()
	for _, c := range doomed {
		_ = c.Close()
	}
	w.log.Warn("productsd: redis master switched, closed connections to the old one", "old", addr, "closed", len(doomed))
}

// DialHook tracks every connection rdb dials, pub/sub ones included.
func (w *masterWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, w: w}
		w.mu.Lock()
		w.conns[tc] = struct{}{}
		w.mu.Unlock()
		return tc, nil
	}
}

// ProcessHook passes commands through.
func (w *masterWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

// ProcessPipelineHook passes pipelines through.
func (w *masterWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	w    *masterWatch
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.w.mu.Lock()
		delete(c.w.conns, c)
		c.w.mu.Unlock()
	})
	return c.Conn.Close()
}
