package products

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// TestParseCanonicalUUID: the hot path's parser accepts exactly what
// uuid.Parse accepts at 36 characters, with the same value, and writes the
// lower-case form the cache key needs.
func TestParseCanonicalUUID(t *testing.T) {
	t.Parallel()
	const valid = "0192F0a4-7c1e-7b3a-9a4e-3f6d2c1b0a99"
	inputs := []string{valid, strings.ToUpper(valid), strings.ToLower(valid), "", "x",
		"0192f0a47c1e7b3a9a4e3f6d2c1b0a99", "{0192f0a4-7c1e-7b3a-9a4e-3f6d2c1b0a9}",
		"urn:uuid:0192f0a4-7c1e-7b3a-9a4e-3f6d2c1b0a99", valid + "0", valid[:35]}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefABCDEFgG-xz{}:\x00\xff"
	for range 20000 {
		b := []byte(valid)
		for range 1 + rng.IntN(2) {
			b[rng.IntN(len(b))] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		var key [36]byte
		got, err := parseCanonicalUUID(in, key[:])
		want, werr := uuid.Parse(in)
		if len(in) != 36 {
			werr = errMalformedID // uuid.Parse takes other forms at other lengths
		}
		if (err == nil) != (werr == nil) || (err == nil && got != want) {
			t.Fatalf("parseCanonicalUUID(%q) = %v, %v; uuid.Parse: %v, %v", in, got, err, want, werr)
		}
		if err == nil && string(key[:]) != want.String() {
			t.Fatalf("key of %q: got %q, want %q", in, key[:], want.String())
		}
	}
}

// TestHotPathRoutesLikeTheRouter: GET and HEAD of product paths, which the
// server sends past the router, get the answer the router would give, for
// good, malformed and unmatched paths alike.
func TestHotPathRoutesLikeTheRouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	id, _ := a.create(t, "routed", 1)["id"].(string)
	a.version(t, id)
	srv, ok := NewServer(nil, a.svc, newRegistry()).(*server)
	if !ok {
		t.Fatal("NewServer does not return *server")
	}
	paths := []string{"/products/" + id, "/products/" + strings.ToUpper(id), "/products/" + id + "/",
		"/products/", "/products//", "/products/x", "/products/" + uuid.NewString(), "/products/" + id + "/x"}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, p := range paths {
			t.Run(method+" "+p, func(t *testing.T) {
				srv.router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, p, nil)) // the caches hold it now
				got, want := httptest.NewRecorder(), httptest.NewRecorder()
				srv.ServeHTTP(got, httptest.NewRequest(method, p, nil))
				srv.router.ServeHTTP(want, httptest.NewRequest(method, p, nil))
				if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Fatalf("got %d %q, want %d %q", got.Code, got.Body, want.Code, want.Body)
				}
				for _, h := range []string{"Content-Type", "Etag", "Cache-Status", "Location", "Allow"} {
					if got.Header().Get(h) != want.Header().Get(h) {
						t.Fatalf("%s: got %q, want %q", h, got.Header().Get(h), want.Header().Get(h))
					}
				}
			})
		}
	}
}

// TestL1HitAllocatesNothing: an L1 hit through the whole server, metrics
// included, allocates nothing of its own.
func TestL1HitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	h, req, w := l1HitServer(t)
	clear(w.h)
	h.ServeHTTP(w, req)
	if got := w.h.Get("Cache-Status"); got != wantL1Hit {
		t.Fatalf("got Cache-Status %q, want an L1 hit", got)
	}
	if n := testing.AllocsPerRun(1000, func() { clear(w.h); h.ServeHTTP(w, req) }); n != 0 {
		t.Fatalf("got %v allocations per L1 hit, want 0", n)
	}
}

// TestRecycledReadsKeepTheirIDs: product reads recycle their key and
// loader after an L1 hit; concurrent hits and misses (fills that outlive
// nothing, fills shared between callers) each get their own product, and
// the race detector sees no reuse of a read still in use.
func TestRecycledReadsKeepTheirIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	var ids []string
	for i := range 40 {
		id, _ := a.create(t, fmt.Sprintf("recycled-%d", i), int64(i+1))["id"].(string)
		ids = append(ids, id)
	}
	for _, id := range ids[:20] {
		a.version(t, id) // cached: later reads are L1 hits; the rest miss first
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 60 {
				id := ids[(g*7+i)%len(ids)]
				if g%4 == 0 {
					id = strings.ToUpper(id)
				}
				status, _, body, err := fetch(a.url + "/products/" + id)
				if err == nil && (status != http.StatusOK || !bytes.Contains(body, []byte(`"id":"`+strings.ToLower(id)+`"`))) {
					err = fmt.Errorf("GET %s: %d %s", id, status, body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSmallAnswersHaveLength: the handlers leave Content-Length of a small
// body to net/http, which sets it for GET and HEAD alike; a large list
// page carries its own.
func TestSmallAnswersHaveLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	id, _ := a.create(t, "length", 1)["id"].(string)
	for range 30 {
		a.create(t, strings.Repeat("long name ", 10), 5)
	}
	for _, path := range []string{"/products/" + id, "/products?limit=200"} {
		get := do(t, http.MethodGet, a.url+path, "")
		wantStatus(t, get, http.StatusOK)
		if path != "/products/"+id && len(get.body) <= bufferedBody {
			t.Fatalf("list page of %d bytes, want more than %d", len(get.body), bufferedBody)
		}
		for _, r := range []response{get, do(t, http.MethodHead, a.url+path, "")} {
			if r.ContentLength != int64(len(get.body)) || len(r.TransferEncoding) > 0 {
				t.Fatalf("%s %s: Content-Length %d, Transfer-Encoding %v; want %d", r.Request.Method, path, r.ContentLength, r.TransferEncoding, len(get.body))
			}
		}
	}
}
