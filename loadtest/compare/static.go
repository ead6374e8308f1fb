package compare

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// StaticServer is the ceiling of the comparison: a bare net/http handler that
// answers every request with fixed bytes and does no other work.
// GET /products/{id} (and PUT) write Product; POST writes Product with 201;
// DELETE answers 204; GET /products writes List; /healthz and /readyz
// answer 200; /metrics is empty.
type StaticServer struct {
	Product []byte // a product's JSON, as productsd sends it
	ETag    string // sent with Product; may be empty
	// CacheStatus is sent with Product, so the ceiling writes the same
	// header bytes as an L1 hit ("productsd-l1; hit") and the load
	// generator does the same parsing work for both; may be empty.
	CacheStatus string
	List        []byte // a list page; default {"items":[],"next_after":null}
	// Metrics, when set, serves /metrics (for example the process's CPU
	// time, which the comparison reads); nil answers it empty.
	Metrics http.Handler
}

// ServeHTTP implements http.Handler.
func (s *StaticServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch p := r.URL.Path; {
	case p == "/healthz" || p == "/readyz":
		w.WriteHeader(http.StatusOK)
	case p == "/metrics":
		if s.Metrics != nil {
			s.Metrics.ServeHTTP(w, r)
			return
		}
		h.Set("Content-Type", "text/plain; version=0.0.4")
	case p == "/products":
		h.Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			w.Write(s.Product)
			return
		}
		if s.List == nil {
			w.Write([]byte(`{"items":[],"next_after":null}`))
			return
		}
		w.Write(s.List)
	case strings.HasPrefix(p, "/products/"):
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Content-Type", "application/json")
		if s.ETag != "" {
			h.Set("ETag", s.ETag)
		}
		if s.CacheStatus != "" {
			h.Set("Cache-Status", s.CacheStatus)
		}
		w.Write(s.Product)
	default:
		http.NotFound(w, r)
	}
}

// FetchStatic builds a StaticServer from a running productsd: the bytes of
// base/products/{id} and of the first list page.
func FetchStatic(ctx context.Context, client *http.Client, base, id string) (*StaticServer, error) {
	get := func(path string) ([]byte, http.Header, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return body, resp.Header, err
	}
	product, hdr, err := get("/products/" + id)
	if err != nil {
		return nil, fmt.Errorf("compare: static: %w", err)
	}
	list, _, err := get("/products?limit=50")
	if err != nil {
		return nil, fmt.Errorf("compare: static: %w", err)
	}
	// The ceiling is an L1 hit's bytes, whatever mode the copy came from.
	return &StaticServer{Product: product, ETag: hdr.Get("ETag"), CacheStatus: "productsd-l1; hit", List: list}, nil
}
