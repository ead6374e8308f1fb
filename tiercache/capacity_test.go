package tiercache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// The capacity model (README, "Capacity model"): the Redis CPU of a fleet of
// replicas is the sum over its sources (freshness pings, replica probes,
// writes and their fan-out, L2 hits, misses) of calls per second times the
// cost of one call. This file measures each cost on a redis-server of the
// test's own and checks the sum against a fleet of many idle replicas and a
// few busy ones in one process.

// unitCost is what one call of a source costs its redis-server: the INFO
// commandstats usec of the commands it sends (execution alone), and the
// process CPU of INFO cpu (user + system), which adds reading, parsing and
// answering the round trip and, for a publish, writing the message to every
// subscriber's socket.
type unitCost struct{ usec, cpu float64 }

func (u unitCost) times(n float64) unitCost  { return unitCost{u.usec * n, u.cpu * n} }
func (u unitCost) plus(o unitCost) unitCost  { return unitCost{u.usec + o.usec, u.cpu + o.cpu} }
func (u unitCost) minus(o unitCost) unitCost { return unitCost{u.usec - o.usec, u.cpu - o.cpu} }
func (u unitCost) per(n float64) unitCost    { return u.times(1 / n) }
func (u unitCost) String() string            { return fmt.Sprintf("%.2f µs usec, %.2f µs CPU", u.usec, u.cpu) }

// reading is the counters of a redis-server at one moment, or the
// difference of two.
type reading struct {
	cmds map[string]cmdStat
	cpu  float64 // µs
	at   time.Time
	wall time.Duration // of a difference
}

func (r reading) usecOf(match func(cmd string) bool) float64 {
	var u float64
	for c, s := range r.cmds {
		if match(c) {
			u += s.usec
		}
	}
	return u
}

func (r reading) calls(cmd string) int64 { return int64(r.cmds[cmd].calls) }

// commands lists every command run, with its calls and usec.
func (r reading) commands() string {
	var cmds []string
	for c, st := range r.cmds {
		if st.calls > 0 {
			cmds = append(cmds, fmt.Sprintf("%s %.0f calls %.0f usec", c, st.calls, st.usec))
		}
	}
	slices.Sort(cmds)
	return strings.Join(cmds, ", ")
}

// cost is the usec of cmds.
func (r reading) cost(cmds ...string) float64 {
	return r.usecOf(func(c string) bool { return slices.Contains(cmds, c) })
}

// capacitySources names the commands of the sources that are not the data
// path; every other command (GET, MGET, the scripts and the commands they
// run) is the data path's, counted the same way in the calibration of hits
// and misses and in the fleet, scripts' inner commands twice in both. A
// write's DEL stays in the data path: the fill script runs DEL too, and
// the counters cannot tell the two apart.
var capacitySources = map[string]string{
	"ping": "pings", "info": "probes", "publish": "writes",
	"zadd": "registry", "zremrangebyscore": "registry", "zrange": "registry",
	"subscribe": "connect", "hello": "connect", "client|setinfo": "connect",
}

func dataPath(cmd string) bool { _, ok := capacitySources[cmd]; return !ok }

// capacityMeter reads a redis-server's counters.
type capacityMeter struct {
	t    testing.TB
	rdb  *redis.Client
	idle float64 // process CPU µs per second with no client working
	// pace, if set, spaces the calls measure makes: one call per wake-up
	// of the server, as a lightly loaded one sees them, instead of back to
	// back, which is nearer a busy one (see TestCapacityModel).
	pace time.Duration
}

// patientClient connects to addr with timeouts a starved machine does not
// reach: what the meter and the calibration ask carries no deadline of
// its own, and a slow answer is a figure, not a failure.
func patientClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	return dialRedis(t, &redis.Options{Addr: addr, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
}

func (m *capacityMeter) read() reading {
	m.t.Helper()
	cmds, cpu := redisCounters(m.t, m.rdb)
	return reading{cmds: cmds, cpu: cpu, at: time.Now()}
}

// since returns r - before, with the idle CPU of the interval taken off.
func (m *capacityMeter) since(before reading) reading {
	m.t.Helper()
	r := m.read()
	d := reading{cmds: map[string]cmdStat{}, wall: r.at.Sub(before.at)}
	for c, s := range r.cmds {
		b := before.cmds[c]
		d.cmds[c] = cmdStat{calls: s.calls - b.calls, usec: s.usec - b.usec}
	}
	d.cpu = r.cpu - before.cpu - m.idle*d.wall.Seconds()
	return d
}

// measure runs do n times and returns the cost of one call: the usec of
// the commands match accepts, and the process CPU.
func (m *capacityMeter) measure(n int, match func(cmd string) bool, do func(i int)) unitCost {
	m.t.Helper()
	var tick <-chan time.Time
	if m.pace > 0 {
		t := time.NewTicker(m.pace)
		defer t.Stop()
		tick = t.C
	}
	before := m.read()
	for i := range n {
		if tick != nil {
			<-tick
		}
		do(i)
	}
	d := m.since(before)
	return unitCost{usec: d.usecOf(match), cpu: d.cpu}.per(float64(n))
}

// capacityCosts are the measured costs of one call of each source.
type capacityCosts struct {
	ping, probe, hit, miss unitCost
	// write is a DEL of the value and lease keys and a PUBLISH with no
	// subscriber: the usec is the PUBLISH's, the CPU both round trips'.
	write   unitCost
	deliver unitCost // what one more subscriber adds to a write
}

// measureCosts measures each source alone, n calls each, the fan-out
// with subs subscribers against none.
func measureCosts(t *testing.T, m *capacityMeter, rdb *redis.Client, n, subs int) capacityCosts {
	ctx := context.Background()
	is := func(cmds ...string) func(string) bool { return func(c string) bool { return slices.Contains(cmds, c) } }
	var k capacityCosts

	ps := rdb.Subscribe(ctx, "capacity:ping")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	k.ping = m.measure(n, is("ping"), func(int) {
		if err := ps.Ping(ctx, now); err != nil {
			t.Fatal(err)
		}
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	})
	k.probe = m.measure(n, is("info"), func(int) {
		if err := rdb.Info(ctx, "server", "replication").Err(); err != nil {
			t.Fatal(err)
		}
	})

	// Hits and misses as a cache in redis mode reads: no pings, no fan-out.
	c := newCache(t, rdb, Options{Namespace: "capacity-cal-" + m.pace.String(), Mode: ModeL2Only})
	load := func(context.Context) (int, error) { return 1, nil }
	key := func(i int) string { return "k" + strconv.Itoa(i) }
	k.miss = m.measure(n, dataPath, func(i int) {
		if _, err := c.Get(ctx, key(i), load); err != nil {
			t.Fatal(err)
		}
	})
	k.hit = m.measure(n, dataPath, func(i int) {
		if _, err := c.Get(ctx, key(i), load); err != nil {
			t.Fatal(err)
		}
	})

	payload := capacityPayload(t)
	write := func(i int) {
		rdb.Del(ctx, "capacity:v:"+key(i), "capacity:l:"+key(i))
		if err := rdb.Publish(ctx, "capacity:inval", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	k.write = m.measure(n, is("publish"), write)
	stop := subscribers(t, rdb, "capacity:inval", subs)
	fanned := m.measure(n, is("publish"), write)
	stop()
	k.deliver = fanned.minus(k.write).per(float64(subs))
	return k
}

// capacityPayload is a one-key invalidation message as a replica sends it.
func capacityPayload(t *testing.T) []byte {
	msg := message{V: messageVersion, Src: "host-12345-0123abcd", Inc: randomToken(), Seq: 1234,
		TS: time.Now().UnixMicro(), Keys: []string{"product:3f1c2a4e-8d7b-4c1e-9a2f-5b6c7d8e9f01"}}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subscribers subscribes n connections to channel, each draining what it
// receives, until stop.
func subscribers(t *testing.T, rdb *redis.Client, channel string, n int) (stop func()) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var subs []*redis.PubSub
	for range n {
		ps := rdb.Subscribe(ctx, channel)
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, ps)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ps.Channel() {
			}
		}()
	}
	return func() {
		for _, ps := range subs {
			_ = ps.Close()
		}
		wg.Wait()
	}
}

// fleetRun is what a fleet did in one measured interval.
type fleetRun struct {
	d                       reading
	idle, busy              int
	pingsIdle, pingsBusy    uint64 // Stats.FreshnessPings
	writes, received, hits  uint64
	misses, breaks, lapses  uint64
	subscribers             int64
	readsPerBusy, writesPer time.Duration
}

// TestCapacityModel measures the Redis cost of each source of the capacity
// model on a redis-server of its own, predicts from them what a fleet of
// idle tiered replicas and a few busy ones (one of them writing) costs, and
// runs that fleet in one process: predicted against measured, side by side
// in the log. The counts are checked (every write is one PUBLISH and
// reaches every subscriber; the PINGs Redis ran are the ones the replicas
// counted, but for those in flight; an idle replica pings at its idle pace, PingTimeout/3,
// and probes at most once a second); the CPU only within a factor of 3,
// which a busy machine does not break. TIERCACHE_CAPACITY_RUN sets the
// measured interval (default 2s) and TIERCACHE_CAPACITY_IDLE the idle
// replicas (default 50); the README quotes a run of 20s.
func TestCapacityModel(t *testing.T) {
	run, idle := capacityRun(t), 50
	if s := os.Getenv("TIERCACHE_CAPACITY_IDLE"); s != "" {
		var err error
		if idle, err = strconv.Atoi(s); err != nil || idle < 1 {
			t.Fatalf("TIERCACHE_CAPACITY_IDLE=%q: want a positive count", s)
		}
	}
	const busy = 3
	srv := startRedisServer(t)
	m := &capacityMeter{t: t, rdb: patientClient(t, srv.addr())}
	before := m.read()
	time.Sleep(time.Second) // the server's own timers, measured, not waited for
	m.idle = m.since(before).cpu
	t.Logf("idle redis-server: %.0f µs CPU per second", m.idle)
	rdb := patientClient(t, srv.addr())
	costs := measureCosts(t, m, rdb, 1000, idle+busy)
	m.pace = time.Millisecond
	paced := measureCosts(t, m, rdb, int(min(run, 5*time.Second)/(10*time.Millisecond)), idle+busy)
	for _, k := range []struct {
		how string
		c   capacityCosts
	}{{"back to back", costs}, {"one a millisecond", paced}} {
		t.Logf("per call, %s: ping %v | probe (INFO) %v | L2 hit %v | miss %v | write %v | + per subscriber %v",
			k.how, k.c.ping, k.c.probe, k.c.hit, k.c.miss, k.c.write, k.c.deliver)
	}

	f := runFleet(t, m, srv, idle, busy, run)
	t.Logf("fleet of %d idle + %d busy replicas, %.1fs (subscription breaks %d, freshness lapses %d); %s",
		f.idle, f.busy, f.d.wall.Seconds(), f.breaks, f.lapses, f.d.commands())
	checkFleetCounts(t, f)
	pred, meas := predictFleet(t, f, costs, "back to back")
	predictFleet(t, f, paced, "one a millisecond")
	if r := meas.cpu / pred.cpu; r > 3 || r < 1.0/3 {
		t.Errorf("measured Redis CPU %.0f µs is %.2fx the model's %.0f µs: want within a factor of 3", meas.cpu, r, pred.cpu)
	}
}

// capacityRun is the measured interval of the capacity tests:
// TIERCACHE_CAPACITY_RUN, default 2s.
func capacityRun(t *testing.T) time.Duration {
	s := os.Getenv("TIERCACHE_CAPACITY_RUN")
	if s == "" {
		return 2 * time.Second
	}
	run, err := time.ParseDuration(s)
	if err != nil || run <= 0 {
		t.Fatalf("TIERCACHE_CAPACITY_RUN=%q: want a positive duration", s)
	}
	return run
}

// runFleet runs idle replicas that never read and busy ones that read a
// hundred keys every millisecond, the first of which also writes one every
// 20ms, for run, and returns what they did and what Redis counted.
func runFleet(t *testing.T, m *capacityMeter, srv redisServer, idle, busy int, run time.Duration) fleetRun {
	ctx := context.Background()
	load := func(context.Context) (int, error) { return 1, nil }
	key := func(i int) string { return "product:" + strconv.Itoa(i%100) }
	var caches []*Cache[int]
	for i := range idle + busy {
		caches = append(caches, newCache(t, srv.client(t), Options{Namespace: "capacity", ReplicaID: "r" + strconv.Itoa(i)}))
	}
	waitReady(t, caches...)
	idles, busies := caches[:idle], caches[idle:]
	for _, c := range busies {
		for i := range 100 {
			if _, err := c.Get(ctx, key(i), load); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 10*time.Second, "idle replicas' pingers idle", func() bool {
		for _, c := range idles {
			if !c.bus.idle.Load() {
				return false
			}
		}
		return true
	})
	f := fleetRun{idle: idle, busy: busy, readsPerBusy: time.Millisecond, writesPer: 20 * time.Millisecond}
	numsub, err := m.rdb.PubSubNumSub(ctx, "capacity:inval").Result()
	if err != nil {
		t.Fatal(err)
	}
	f.subscribers = numsub["capacity:inval"]
	s0 := fleetStats(caches)
	before := m.read()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	every := func(d time.Duration, do func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
					do(i)
				}
			}
		}()
	}
	for _, c := range busies {
		every(f.readsPerBusy, func(i int) { _, _ = c.Get(ctx, key(i*37), load) })
	}
	every(f.writesPer, func(i int) { _ = busies[0].Invalidate(ctx, key(i*11)) })
	time.Sleep(run) // the measured interval: what it counts is checked, not when
	close(stop)
	wg.Wait()
	// Let the last invalidations reach every replica before counting; one
	// that never does fails checkFleetCounts.
	poll(10*time.Second, func() bool {
		s, want := fleetStats(caches), busies[0].Stats().Published-s0[idle].Published
		for i := range s {
			if s[i].Received-s0[i].Received < want {
				return false
			}
		}
		return true
	})
	f.d = m.since(before)
	s1 := fleetStats(caches)
	for i := range caches {
		a, b := s1[i], s0[i]
		if i < idle {
			f.pingsIdle += a.FreshnessPings - b.FreshnessPings
		} else {
			f.pingsBusy += a.FreshnessPings - b.FreshnessPings
			f.hits += a.L2Hits - b.L2Hits
			f.misses += a.L2Misses - b.L2Misses
		}
		f.received += a.Received - b.Received
		f.breaks += a.SubscriptionBreaks - b.SubscriptionBreaks
		f.lapses += a.FreshnessLapses - b.FreshnessLapses
	}
	f.writes = s1[idle].Published - s0[idle].Published
	return f
}

func fleetStats(caches []*Cache[int]) []Stats {
	out := make([]Stats, len(caches))
	for i, c := range caches {
		out[i] = c.Stats()
	}
	return out
}

// checkFleetCounts checks the counts that do not depend on how busy the
// machine is.
func checkFleetCounts(t *testing.T, f fleetRun) {
	t.Helper()
	n := f.idle + f.busy
	if f.subscribers != int64(n) {
		t.Errorf("PUBSUB NUMSUB: got %d, want %d", f.subscribers, n)
	}
	if got := f.d.calls("publish"); got != int64(f.writes) {
		t.Errorf("PUBLISH calls: got %d, want %d (one per write)", got, f.writes)
	}
	if f.breaks == 0 && f.received != f.writes*uint64(n) {
		t.Errorf("messages received: got %d, want %d (every write by every replica)", f.received, f.writes*uint64(n))
	}
	pings := int64(f.pingsIdle + f.pingsBusy)
	if got := f.d.calls("ping"); got < pings-int64(2*n) || got > pings+int64(2*n) {
		t.Errorf("PING calls: got %d, want the %d the replicas sent, ±%d in flight", got, pings, 2*n)
	}
	wall := f.d.wall.Seconds()
	if max := float64(f.idle) * (wall/(idlePingPace().Seconds()) + 2); float64(f.pingsIdle) > max {
		t.Errorf("idle replicas sent %d pings in %.1fs: want at most %.0f (one per PingTimeout/3 each)", f.pingsIdle, wall, max)
	}
	if max := int64(float64(n)*(wall/replicaProbeEvery.Seconds()+1)) + 1; f.d.calls("info") > max {
		t.Errorf("INFO calls: got %d, want at most %d (a probe a second per replica, and the meter's)", f.d.calls("info"), max)
	}
}

// idlePingPace is the pace of an idle replica's liveness ping at the
// default PingTimeout.
func idlePingPace() time.Duration {
	o, _ := Options{}.withDefaults()
	return o.PingTimeout / 3
}

// predictFleet logs the model's prediction for f's counts beside what
// Redis measured, per source and in all, and returns the totals.
func predictFleet(t *testing.T, f fleetRun, k capacityCosts, how string) (pred, meas unitCost) {
	t.Helper()
	wall := f.d.wall.Seconds()
	n := float64(f.idle + f.busy)
	pings := float64(f.pingsIdle + f.pingsBusy)
	probes := float64(f.d.calls("info"))
	rows := []struct {
		source, rate string
		pred         unitCost
		measuredUSec float64
	}{
		{"pings", fmt.Sprintf("%.0f/s (busy %.0f, idle %.2f per replica)", pings/wall,
			float64(f.pingsBusy)/float64(f.busy)/wall, float64(f.pingsIdle)/float64(f.idle)/wall),
			k.ping.times(pings), f.d.cost("ping")},
		{"probes", fmt.Sprintf("%.1f/s (%.2f per replica)", probes/wall, probes/n/wall),
			k.probe.times(probes), f.d.cost("info")},
		{"writes", fmt.Sprintf("%.1f/s to %d subscribers", float64(f.writes)/wall, f.subscribers),
			k.write.plus(k.deliver.times(float64(f.subscribers))).times(float64(f.writes)),
			f.d.cost("publish")},
		{"L2 hits", fmt.Sprintf("%.0f/s", float64(f.hits)/wall), k.hit.times(float64(f.hits)), 0},
		{"misses", fmt.Sprintf("%.0f/s", float64(f.misses)/wall), k.miss.times(float64(f.misses)), f.d.usecOf(dataPath)},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the model with the costs measured %s:\n", how)
	fmt.Fprintf(&b, "%-8s %-44s %12s %12s %14s\n", "source", "rate", "model usec/s", "model CPU/s", "measured usec/s")
	for _, r := range rows {
		pred = pred.plus(r.pred)
		m := fmt.Sprintf("%14.0f", r.measuredUSec/wall)
		if r.source == "L2 hits" {
			m = fmt.Sprintf("%14s", "(with misses)")
		}
		fmt.Fprintf(&b, "%-8s %-44s %12.0f %12.0f %s\n", r.source, r.rate, r.pred.usec/wall, r.pred.cpu/wall, m)
	}
	meas = unitCost{usec: f.d.usecOf(func(string) bool { return true }), cpu: f.d.cpu}
	fmt.Fprintf(&b, "total: model %.0f µs/s usec, %.0f µs/s CPU; measured %.0f µs/s usec, %.0f µs/s CPU (%.2fx the model), idle server not counted",
		pred.usec/wall, pred.cpu/wall, meas.usec/wall, meas.cpu/wall, meas.cpu/pred.cpu)
	t.Log(b.String())
	return pred, meas
}

// TestCapacityClusterBackground measures what idle replicas cost a Redis
// Cluster of three masters: the topology watch (CLUSTER SLOTS every
// TopologyInterval), the replica probe (INFO on every master once a
// second) and the idle pings, per node. Every replica subscribes on the
// master of the channel's slot, so that node alone takes the pings of the
// whole fleet (checked: no other node runs a PING); the INFO probes fall on
// every master. TIERCACHE_CAPACITY_RUN sets the measured interval.
func TestCapacityClusterBackground(t *testing.T) {
	run := capacityRun(t)
	const replicas = 30
	addrs := testenv.RedisCluster(t)
	meters := make([]*capacityMeter, len(addrs))
	before := make([]reading, len(addrs))
	for i, a := range addrs {
		meters[i] = &capacityMeter{t: t, rdb: patientClient(t, a)}
		before[i] = meters[i].read()
	}
	time.Sleep(time.Second) // the nodes' own timers and cluster bus, measured, not waited for
	for i, m := range meters {
		m.idle = m.since(before[i]).cpu
	}
	var caches []*Cache[int]
	for i := range replicas {
		caches = append(caches, newCache(t, clusterClient(t, addrs), Options{Namespace: "capacity", ReplicaID: "r" + strconv.Itoa(i)}))
	}
	waitReady(t, caches...)
	eventually(t, 10*time.Second, "pingers idle", func() bool {
		for _, c := range caches {
			if !c.bus.idle.Load() {
				return false
			}
		}
		return true
	})
	for i, m := range meters {
		before[i] = m.read()
	}
	s0 := fleetStats(caches)
	time.Sleep(run) // the measured interval: what it counts is checked, not when
	ctx := context.Background()
	channelMaster, err := clusterClient(t, addrs).MasterForKey(ctx, "capacity:inval")
	if err != nil {
		t.Fatal(err)
	}
	n := float64(replicas)
	for i, m := range meters {
		d := m.since(before[i])
		w := d.wall.Seconds()
		role := "other master"
		if addrs[i] == channelMaster.Options().Addr {
			role = "channel's master"
		} else if d.calls("ping") != 0 {
			t.Errorf("%s: %d PINGs on a node that does not carry the channel", addrs[i], d.calls("ping"))
		}
		slots := d.cmds["cluster|slots"]
		t.Logf("%s (%s), per replica per second: CLUSTER SLOTS %.2f (%.2f µs usec each), INFO %.2f, PING %.2f, "+
			"CPU %.0f µs/s per replica beyond the idle node's %.0f µs/s; %s",
			addrs[i], role, slots.calls/n/w, slots.usec/max(slots.calls, 1), float64(d.calls("info"))/n/w,
			float64(d.calls("ping"))/n/w, d.cpu/w/n, m.idle, d.commands())
		if limit := n * (w/replicaProbeEvery.Seconds() + 1); float64(d.calls("info")) > limit+1 {
			t.Errorf("%s: %d INFO calls in %.1fs: want at most %.0f, one a second per replica", addrs[i], d.calls("info"), w, limit)
		}
	}
	var breaks uint64
	for i, st := range fleetStats(caches) {
		breaks += st.SubscriptionBreaks - s0[i].SubscriptionBreaks
	}
	m := &capacityMeter{t: t, rdb: patientClient(t, channelMaster.Options().Addr)}
	one := m.measure(1000, func(c string) bool { return c == "cluster|slots" }, func(int) { m.rdb.ClusterSlots(ctx) })
	t.Logf("subscription breaks %d; one CLUSTER SLOTS back to back: %v (the idle node's CPU included)", breaks, one)
}
