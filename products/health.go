package products

import (
	"context"
	"time"
)

// Readiness is the body of GET /readyz.
type Readiness struct {
	Status       string `json:"status"`       // "ready" or "not ready"
	Database     string `json:"database"`     // "up" or "down"
	Redis        string `json:"redis"`        // "up", "down" or "disabled"
	Invalidation string `json:"invalidation"` // "up", "down" or "disabled"
	Draining     bool   `json:"draining,omitempty"`
}

// SetDraining marks the replica as shutting down: from now on [Service.Ready]
// reports it not ready, so load balancers stop sending to it, while it
// keeps serving what still arrives.
func (s *Service) SetDraining() { s.draining.Store(true) }

// Ready reports whether the replica can serve: it needs the database (and
// its schema) and must not be draining. Redis and the invalidation channel are reported but do not
// make the replica unready: without them it still serves, from PostgreSQL.
func (s *Service) Ready(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r := Readiness{Status: "ready", Database: "up", Redis: "disabled", Invalidation: "disabled"}
	if !s.schema.Load() || s.store.Ping(ctx) != nil {
		r.Status, r.Database = "not ready", "down"
	}
	if s.draining.Load() {
		r.Status, r.Draining = "not ready", true
	}
	if s.cache != nil {
		st := s.cache.State()
		r.Redis, r.Invalidation = st.Redis, st.Channel
	}
	if s.rdb != nil && r.Redis != "disabled" {
		// The breaker only opens after failed reads; a ping tells an idle
		// replica's state too.
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		if s.rdb.Ping(pctx).Err() != nil {
			r.Redis = "down"
		}
	}
	return r
}
