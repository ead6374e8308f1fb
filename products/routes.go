package products

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tiercache/productcache/tiercache/tiercacheprom"
)

// NewServer returns the HTTP API of svc: every route of DESIGN §4. It
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
	handle := func(method, route string, h http.Handler) {
		h = m.instrument(logger, route, h)
		serve := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { h.ServeHTTP(w, req) }
		r.Handle(method, route, serve)
		if method == http.MethodGet {
			r.Handle(http.MethodHead, route, serve) // net/http drops the body
		}
	}

	handle(http.MethodGet, "/products", handleListProducts(logger, svc))
	handle(http.MethodPost, "/products", handleCreateProduct(logger, svc))
	handle(http.MethodGet, "/products/:id", handleGetProduct(logger, svc))
	handle(http.MethodPut, "/products/:id", handleUpdateProduct(logger, svc))
	handle(http.MethodDelete, "/products/:id", handleDeleteProduct(logger, svc))
	handle(http.MethodGet, "/healthz", handleHealthz())
	handle(http.MethodGet, "/readyz", handleReadyz(svc))
	handle(http.MethodGet, "/metrics", handleMetrics(reg))
	return r
}
