package products

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tiercache/productcache/tiercache/tiercacheprom"
)

// NewServer returns the HTTP API of svc: every route of docs/design.md §4. It
// registers its metrics (and the service's: database queries, pool, cache)
// on reg and serves reg at /metrics; reg belongs to this server alone.
func NewServer(logger *slog.Logger, svc *Service, reg *prometheus.Registry) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newHTTPMetrics(reg)
	reg.MustRegister(newServiceCollector(svc))
	if svc.cache != nil {
		reg.MustRegister(tiercacheprom.NewCollector(svc.cache, tiercacheprom.Options{}))
	}

	r := httprouter.New()
	r.HandleMethodNotAllowed = true
	// OPTIONS answers 204 with the same exact Allow a 405 carries: the
	// methods registered for the path, HEAD with every GET, and OPTIONS.
	r.HandleOPTIONS = true
	r.GlobalOPTIONS = m.instrument(logger, "options", handleOptions())
	r.NotFound = m.instrument(logger, "unmatched", handleNotFound())
	r.MethodNotAllowed = m.instrument(logger, "unmatched", handleMethodNotAllowed())
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		logger.Error("products: handler panic", "method", req.Method, "path", req.URL.Path, "panic", fmt.Sprint(v))
		writeProblem(w, http.StatusInternalServerError, "internal error", nil)
	}
	// Handlers find their parameters in the request path (see parseID), so
	// routes use Handle, which does not copy the request to add them to its
	// context.
	handle := func(method, route string, h http.Handler) http.Handler {
		h = m.instrument(logger, route, h)
		serve := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { h.ServeHTTP(w, req) }
		r.Handle(method, route, serve)
		if method == http.MethodGet {
			r.Handle(http.MethodHead, route, serve) // net/http drops the body
		}
		return h
	}

	handle(http.MethodGet, "/products", handleListProducts(logger, svc))
	handle(http.MethodPost, "/products", handleCreateProduct(logger, svc))
	getProduct := handle(http.MethodGet, "/products/:id", handleGetProduct(logger, svc))
	handle(http.MethodPut, "/products/:id", handleUpdateProduct(logger, svc))
	handle(http.MethodDelete, "/products/:id", handleDeleteProduct(logger, svc))
	handle(http.MethodGet, "/healthz", handleHealthz())
	handle(http.MethodGet, "/readyz", handleReadyz(svc))
	handle(http.MethodGet, "/metrics", handleMetrics(reg))
	return &server{router: r, getProduct: getProduct}
}

// server sends GET and HEAD /products/{id}, the hottest route, straight to
// its handler, and everything else through the router. The router would
// send those requests to the same handler, but it allocates their
// parameters and walks its tree first: on an L1 hit that was the last
// allocation left.
type server struct {
	router     *httprouter.Router
	getProduct http.Handler
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isProductPath(r.URL.Path) {
		s.getProduct.ServeHTTP(w, r)
		return
	}
	s.router.ServeHTTP(w, r)
}

// isProductPath reports whether path is one the router matches to
// /products/:id: the prefix, then one non-empty segment.
func isProductPath(path string) bool {
	id, ok := strings.CutPrefix(path, "/products/")
	return ok && id != "" && strings.IndexByte(id, '/') < 0
}
