package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tiercache/productcache/internal/testenv"
)

// TestSentinelFailoverLosingInvalidation (docs/design.md §3.15): master M,
// replica R whose replication link is cut, one sentinel; two productsd in
// REDIS_MODE sentinel with version 1 of a product, a second product and a
// list page in L1 and L2. An update and a delete through a are
// acknowledged while R cannot hear of their deletes and the list group's
// generation bumps; M is killed
// with SIGKILL and the sentinel promotes R, which still holds version 1 in
// L2. Within 3s of the promotion R's L2 must not hold version 1 and both
// replicas must serve version 2, a 404 for the deleted product and a page
// without it. With
// REDIS_MIN_REPLICAS_ACK=0 and OUTBOX_REPLAY_WINDOW=0 (no WAIT, no replay:
// FAILOVER_TEST_UNSAFE=1) the outbox row is done at once and both serve
// version 1 from the new master's L2 until its TTL: the test fails.
func TestSentinelFailoverLosingInvalidation(t *testing.T) {
	testenv.SkipShort(t)
	t.Parallel()
	s, rep := testenv.RedisSentinelCuttable(t)
	env := map[string]string{"REDIS_MODE": "sentinel", "REDIS_URL": s.URL(), "CACHE_NAMESPACE": "lostinval"}
	if os.Getenv("FAILOVER_TEST_UNSAFE") != "" {
		env["REDIS_MIN_REPLICAS_ACK"], env["OUTBOX_REPLAY_WINDOW"] = "0", "0"
	}
	ps := startReplicas(t, env, "lost-a", "lost-b")
	a, b := ps[0], ps[1]
	id := post(t, a.url, `{"name":"failover","price_cents":1}`)
	gone := post(t, a.url, `{"name":"deleted-in-failover","price_cents":1}`)
	const page = "/products?limit=100"
	for _, p := range ps {
		for _, path := range []string{"/products/" + id, "/products/" + gone, page} {
			waitFor(t, 5*time.Second, p.name+" to answer "+path+" from L1", func() bool {
				return get(t, p.url+path).Header.Get("Cache-Status") == "productsd-l1; hit"
			})
		}
	}
	rep.CutLink(t)
	req, _ := http.NewRequest(http.MethodPut, a.url+"/products/"+id, strings.NewReader(`{"name":"failover","price_cents":2}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with the replication link cut: %v %v", resp, err)
	}
	resp.Body.Close()
	// A delete and, with both writes, the list group's generation bump,
	// acknowledged while R cannot hear of them either.
	req, _ = http.NewRequest(http.MethodDelete, a.url+"/products/"+gone, nil)
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE with the replication link cut: %v %v", resp, err)
	}
	resp.Body.Close()
	s.Master.Stop() // SIGKILL
	promoted := s.WaitPromoted(30 * time.Second)
	// The replicas' own reads may come from the database (their breakers
	// opened while M was dead) and fill L1 with version 2: what must not
	// survive is version 1 in the new master's L2, which every L1 miss
	// reads, for the L2 TTL.
	r := redis.NewClient(&redis.Options{Addr: s.Replica.Addr()})
	defer r.Close()
	l2key := "lostinval:v:{product:" + id + "}"
	waitFor(t, 3*time.Second-time.Since(promoted), "no version 1 in the new master's L2", func() bool {
		v, err := r.Get(context.Background(), l2key).Result()
		return errors.Is(err, redis.Nil) || (err == nil && !strings.Contains(v, `"version":1,`))
	})
	for _, p := range ps {
		waitFor(t, 3*time.Second-time.Since(promoted), p.name+" to serve version 2 after the promotion", func() bool {
			return p.version(t, id) == 2
		})
	}
	// The deleted product and the list page: neither the deleted row nor
	// version 1 in a page (a group generation the failover lost).
	pageFresh := func(p *process) bool {
		body := get(t, p.url+page).body
		return !strings.Contains(body, gone) && strings.Contains(body, `"price_cents":2`)
	}
	for _, p := range ps {
		waitFor(t, 3*time.Second-time.Since(promoted), p.name+" to serve the delete and the new page after the promotion", func() bool {
			return p.version(t, gone) == 0 && pageFresh(p)
		})
	}
	t.Logf("a and b serve version 2, the delete and the new page %v after the promotion was seen", time.Since(promoted).Round(time.Millisecond))
	// And they keep serving them: nothing refills the old values.
	for range 20 {
		for _, p := range []*process{a, b} {
			if v := p.version(t, id); v != 2 {
				t.Fatalf("%s serves version %d after the failover, want 2", p.name, v)
			}
			if v := p.version(t, gone); v != 0 || !pageFresh(p) {
				t.Fatalf("%s serves the deleted product (version %d) or an old page after the failover", p.name, v)
			}
		}
	}
	for _, p := range ps {
		p.stop(t)
	}
}
