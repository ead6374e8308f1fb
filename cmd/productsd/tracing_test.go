package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tiercache/productcache/internal/testenv"
)

// otlpReceiver is an OTLP/HTTP trace receiver that keeps every span.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// children are the spans whose parent is s.
func (o *otlpReceiver) children(s *tracepb.Span) []*tracepb.Span {
	var out []*tracepb.Span
	for _, c := range o.spans {
		if string(c.ParentSpanId) == string(s.SpanId) {
			out = append(out, c)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

// TestTracingExportsOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, a product
// read that misses the cache is one trace, continuing the caller's
// traceparent: the request's span, under it the cache read (tier loader),
// and under that the Redis commands of the fill and the database query.
// The probes are not traced.
func TestTracingExportsOTLP(t *testing.T) {
	t.Parallel()
	rcv := &otlpReceiver{}
	collector := httptest.NewServer(rcv)
	defer collector.Close()
	_, dbURL := testenv.Schema(t)
	env := map[string]string{"DATABASE_URL": dbURL, "CACHE_NAMESPACE": testenv.Namespace(t), "REDIS_URL": testenv.RedisURL(),
		"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}
	base, stop, _ := startRun(t, env, "-addr", "127.0.0.1:0")
	waitFor(t, 10*time.Second, "/readyz 200", func() bool { return get(t, base+"/readyz").StatusCode == http.StatusOK })
	id := post(t, base, `{"name":"traced","price_cents":1}`)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, base+"/products/"+id, nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if err := stop(); err != nil { // flushes the spans
		t.Fatalf("run: %v", err)
	}

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var server *tracepb.Span
	for _, s := range rcv.spans {
		if hex.EncodeToString(s.TraceId) == traceID && s.Name == "GET /products/{id}" {
			server = s
		}
		if strings.Contains(s.Name, "readyz") {
			t.Errorf("a probe was traced: %s", s.Name)
		}
	}
	if server == nil {
		t.Fatalf("no span GET /products/{id} in trace %s; got %q", traceID, names(rcv.spans))
	}
	var get *tracepb.Span
	for _, c := range rcv.children(server) {
		if c.Name == "tiercache.Get" {
			get = c
		}
	}
	if get == nil {
		t.Fatalf("no tiercache.Get under the request; its children: %q", names(rcv.children(server)))
	}
	if tier := spanAttr(get, "tiercache.tier"); tier != "loader" {
		t.Errorf("tiercache.tier %q, want loader", tier)
	}
	kids := names(rcv.children(get))
	t.Logf("tiercache.Get children: %q", kids)
	if !slices.Contains(kids, "get") || !slices.Contains(kids, "SELECT") {
		t.Errorf("tiercache.Get children %q, want the Redis get and the database SELECT", kids)
	}
}
