package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// TestWriterKilledWithUnsentInvalidation is the process-level version of
// docs/design.md §3 rule 14: three productsd processes; the writer reaches Redis
// through a proxy, which is cut; it answers a PUT with 200 (its
// invalidation queued in memory) and is killed with SIGKILL. The other two
// had the old version in L1 and L2; a sweeper re-sends the invalidation
// from the outbox and both serve the new version within OUTBOX_GRACE +
// OUTBOX_SWEEP_INTERVAL + the lag bound.
func TestWriterKilledWithUnsentInvalidation(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	bin := buildBinary(t)
	_, dbURL := testenv.Schema(t)
	opt, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, opt.Addr, true)
	const grace, sweep, lag = 200 * time.Millisecond, 100 * time.Millisecond, time.Second
	env := map[string]string{
		"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(),
		"OUTBOX_GRACE": grace.String(), "OUTBOX_SWEEP_INTERVAL": sweep.String(),
	}
	writerEnv := map[string]string{"REDIS_URL": testenv.RedisURLVia(t, proxy.Addr())}
	for k, v := range env {
		if _, ok := writerEnv[k]; !ok {
			writerEnv[k] = v
		}
	}
	a := startProcess(t, bin, "outbox-a", writerEnv)
	b, c := startProcess(t, bin, "outbox-b", env), startProcess(t, bin, "outbox-c", env)
	for _, p := range []*process{a, b, c} {
		waitFor(t, 20*time.Second, p.name+" ready", func() bool {
			r := get(t, p.url+"/readyz")
			return r.StatusCode == http.StatusOK && strings.Contains(r.body, `"invalidation":"up"`)
		})
	}
	id := post(t, a.url, `{"name":"killed writer","price_cents":1}`)
	for _, p := range []*process{b, c} {
		// Reads until an L1 hit: the create's own message may still be
		// on its way and evict the first fill.
		waitFor(t, 5*time.Second, p.name+" to answer from L1", func() bool {
			return get(t, p.url+"/products/"+id).Header.Get("Cache-Status") == "productsd-l1; hit"
		})
	}

	proxy.SetUp(false)
	req, _ := http.NewRequest(http.MethodPut, a.url+"/products/"+id, strings.NewReader(`{"name":"killed writer","price_cents":2}`))
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	seen := make(chan time.Time, 1)
	go func() { // when b and c first serve version 2
		deadline := time.Now().Add(10 * time.Second)
		for _, p := range []*process{b, c} {
			for time.Now().Before(deadline) {
				resp, err := client.Get(p.url + "/products/" + id)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if strings.Contains(string(body), `"version":2,`) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		seen <- time.Now()
	}()
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT through the cut writer: %v %v", resp, err)
	}
	var put struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	err = json.NewDecoder(resp.Body).Decode(&put)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("PUT answer: %v", err)
	}
	acked := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", a.name, err)
	}
	<-a.done
	if !strings.Contains(a.stderr.String(), "invalidation deferred") {
		t.Fatalf("%s delivered its invalidation before it died; its log:\n%s", a.name, a.stderr.String())
	}

	bound := grace + sweep + lag
	for _, p := range []*process{b, c} {
		waitFor(t, bound-time.Since(acked), p.name+" to serve version 2", func() bool { return p.version(t, id) == 2 })
	}
	// The PUT itself takes as long as the writer's Redis client retries;
	// a sweeper may re-send the committed row before it is answered. The
	// row was due OUTBOX_GRACE after its transaction began (the product's
	// updated_at), but it is visible to the sweepers only once committed,
	// which a starved machine delayed by over 2 s (the PUT took 2.5 s):
	// the time from the transaction's start is a figure, not a bound. That
	// the settings reached the sweepers (the defaults would make the bound
	// 1.5 s) their startup lines say.
	first := (<-seen).Sub(put.UpdatedAt)
	t.Logf("b and c serve the new version %v after the writer's acknowledgement and kill -9; first %v after the write's transaction began; the PUT took %v (bound %v = grace %v + sweep %v + lag %v)",
		time.Since(acked).Round(time.Millisecond), first.Round(time.Millisecond), acked.Sub(sent).Round(time.Millisecond), bound, grace, sweep, lag)
	for _, p := range []*process{b, c} {
		if want := `"outbox_grace":"` + grace.String() + `"`; !strings.Contains(p.stderr.String(), want) {
			t.Errorf("%s does not log %s: the setting did not reach its sweeper", p.name, want)
		}
	}
	var resent bool
	for _, p := range []*process{b, c} {
		resent = resent || !strings.Contains(get(t, p.url+"/metrics").body, "productsd_outbox_resent_total 0")
	}
	if !resent {
		t.Errorf("neither b nor c counts a re-sent invalidation in productsd_outbox_resent_total")
	}
	for _, p := range []*process{b, c} {
		p.stop(t)
	}
}
