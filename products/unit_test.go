package products

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tiercache/productcache/tiercache"
)

// These tests need no servers: they run under -short too.

func TestDecodeInput(t *testing.T) {
	tests := []struct {
		body  string
		want  Input
		field string // the field refused; "" if accepted
	}{
		{`{"name":" a ","price_cents":0}`, Input{Name: "a"}, ""},
		{`{"name":"a","description":"x\ny\tz","price_cents":1000000000000}`, Input{Name: "a", Description: "x\ny\tz", PriceCents: 1e12}, ""},
		{`{"name":"a","description":null,"price_cents":5}`, Input{Name: "a", PriceCents: 5}, ""},
		{` {"price_cents": 7 , "name":"ü"} ` + "\n", Input{Name: "ü", PriceCents: 7}, ""},
		{`{"Name":"a","price_cents":1}`, Input{}, "Name"},
		{`{"name":"a","price_cents":1,"extra":1}`, Input{}, "extra"},
		{`{"name":["a"],"price_cents":1}`, Input{}, "name"},
		{`{"name":"a","description":5,"price_cents":1}`, Input{}, "description"},
		{`{"name":"a","price_cents":"1"}`, Input{}, "price_cents"},
		{`{"name":"a","price_cents":1.5}`, Input{}, "price_cents"},
		{`{"name":"a","price_cents":1E2}`, Input{}, "price_cents"},
		{`{"name":"a","price_cents":-5}`, Input{}, "price_cents"},
		{`{"name":"a","price_cents":1000000000001}`, Input{}, "price_cents"},
		{`{"name":"a","price_cents":18446744073709551616}`, Input{}, "price_cents"},
		{`{"name":"a"}`, Input{}, "price_cents"},
		{`{"name":"\u0000","price_cents":1}`, Input{}, "name"},
		{`{"name":"a\u0085b","price_cents":1}`, Input{}, "name"},
		{`{"name":"a","description":"\r","price_cents":1}`, Input{}, "description"},
		{`{"name":"` + strings.Repeat("x", 201) + `","price_cents":1}`, Input{}, "name"},
		{`{"name":"a","price_cents":1}x`, Input{}, "body"},
		{`{"name":"a","price_cents":1}{}`, Input{}, "body"},
		{"{\"name\":\"\xff\",\"price_cents\":1}", Input{}, "name"},
		{"{\"name\":\"a\",\"description\":\"\xe2\x82\",\"price_cents\":1}", Input{}, "description"},
		{`{"name":"\udfff","price_cents":1}`, Input{}, "name"},
		{`{"name":"\ud800\\udc00","price_cents":1}`, Input{}, "name"},
		{`{"name":"\\ud800","price_cents":1}`, Input{Name: `\ud800`, PriceCents: 1}, ""},
		{`{"name":"\ud800\udc00","price_cents":1}`, Input{Name: "\U00010000", PriceCents: 1}, ""},
		{`{"name":"a",`, Input{}, "body"},
		{`"a"`, Input{}, "body"},
		{`null`, Input{}, "body"},
		{``, Input{}, "body"},
	}
	for _, tt := range tests {
		got, err := DecodeInput(strings.NewReader(tt.body))
		if tt.field == "" {
			if err != nil || got != tt.want {
				t.Errorf("%s: got %+v, %v, want %+v", tt.body, got, err, tt.want)
			}
			continue
		}
		var verr *ValidationError
		if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) || verr.Fields[0].Field != tt.field {
			t.Errorf("%s: got %v, want a validation error on %s", tt.body, err, tt.field)
		}
	}
}

func TestCacheStatus(t *testing.T) {
	T, R, L := tiercache.ModeTiered, tiercache.ModeL2Only, tiercache.ModeL1Only
	tests := []struct {
		mode tiercache.Mode
		info tiercache.Info
		want string
	}{
		{T, tiercache.Info{Source: tiercache.SourceL1}, "productsd-l1; hit"},
		{T, tiercache.Info{Source: tiercache.SourceL2, L1Stored: true}, "productsd-l2; hit, productsd-l1; fwd=miss; stored"},
		{T, tiercache.Info{Source: tiercache.SourceLoader, L1Stored: true, L2Stored: true}, "productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored"},
		{T, tiercache.Info{Source: tiercache.SourceLoader, L2Stored: true}, "productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss"},
		{T, tiercache.Info{Source: tiercache.SourceLoader}, "productsd-l2; fwd=miss, productsd-l1; fwd=miss"},
		{T, tiercache.Info{Source: tiercache.SourceLoader, L1Stored: true, L2Stored: true, Collapsed: true}, "productsd-l2; fwd=miss; stored, productsd-l1; fwd=miss; stored; collapsed"},
		{T, tiercache.Info{Source: tiercache.SourceL2, L1Stored: true, LeaseWaited: true}, "productsd-l2; hit; collapsed, productsd-l1; fwd=miss; stored"},
		{T, tiercache.Info{Source: tiercache.SourceL1, Negative: true}, "productsd-l1; hit"},
		{R, tiercache.Info{Source: tiercache.SourceL2}, "productsd-l2; hit"},
		{R, tiercache.Info{Source: tiercache.SourceLoader, L2Stored: true}, "productsd-l2; fwd=miss; stored"},
		{R, tiercache.Info{Source: tiercache.SourceLoader, L2Stored: true, Collapsed: true}, "productsd-l2; fwd=miss; stored; collapsed"},
		{L, tiercache.Info{Source: tiercache.SourceL1}, "productsd-l1; hit"},
		{L, tiercache.Info{Source: tiercache.SourceLoader, L1Stored: true}, "productsd-l1; fwd=miss; stored"},
		{L, tiercache.Info{Source: tiercache.SourceLoader, Collapsed: true}, "productsd-l1; fwd=miss; collapsed"},
	}
	for _, tt := range tests {
		if got := cacheStatus(tt.mode, tt.info); got != tt.want {
			t.Errorf("%v %+v: got %q, want %q", tt.mode, tt.info, got, tt.want)
		}
	}
}

func TestPreconditions(t *testing.T) {
	tests := []struct {
		header string
		want   Precondition
		bad    bool
	}{
		{"", nil, false},
		{"*", nil, false},
		{`"3"`, Precondition{3}, false},
		{` "3" , "5"`, Precondition{3, 5}, false},
		{`W/"3"`, Precondition{}, false},
		{`"abc"`, Precondition{}, false},
		{`3`, nil, true},
		{`"3`, nil, true},
		{`,`, nil, true},
		{`"a b"`, nil, true},
	}
	for _, tt := range tests {
		got, err := precondition(tt.header)
		if tt.bad != (err != nil) || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("If-Match %q: got %v, %v, want %v (malformed %v)", tt.header, got, err, tt.want, tt.bad)
		}
	}
	for header, want := range map[string]bool{`"3"`: true, `W/"3"`: true, `"1", "3"`: true, "*": true, `"4"`: false, `3`: false, "": false} {
		if got := noneMatch(header, `"3"`); got != want {
			t.Errorf("If-None-Match %q: got %v, want %v", header, got, want)
		}
	}
}

func TestEntryCodec(t *testing.T) {
	for _, e := range []Entry{{Body: []byte(`{"id":"x"}`), ETag: `"42"`, Version: 42}, {Body: []byte(`{"items":[]}`)}} {
		b, err := EntryCodec{}.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EntryCodec{}.Unmarshal(b)
		if err != nil || string(got.Body) != string(e.Body) || got.ETag != e.ETag || got.Version != e.Version {
			t.Errorf("got %+v, %v, want %+v", got, err, e)
		}
	}
	if _, err := (EntryCodec{}).Unmarshal([]byte("short")); err == nil {
		t.Error("a short value decoded")
	}
}

func TestProductKey(t *testing.T) {
	for range 100 {
		id := uuid.Must(uuid.NewV7())
		if got, want := ProductKey(id), "product:"+id.String(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// unwrapWriter is a middleware's writer around another.
type unwrapWriter struct{ http.ResponseWriter }

func (w unwrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestRequestStart: a read finds the arrival instrument read through any
// writer that unwraps to it, with its monotonic reading (so the cache uses
// it for the freshness lease instead of reading the clock), and the zero
// Time through a writer instrument did not make.
func TestRequestStart(t *testing.T) {
	sw := &statusWriter{ResponseWriter: httptest.NewRecorder(), start: 5 * time.Second}
	for _, w := range []http.ResponseWriter{sw, unwrapWriter{sw}, unwrapWriter{unwrapWriter{sw}}} {
		got := requestStart(w)
		if !got.Equal(processStart.Add(5*time.Second)) || got == got.Round(0) {
			t.Fatalf("requestStart(%T) = %v; want processStart+5s with a monotonic reading", w, got)
		}
	}
	if got := requestStart(httptest.NewRecorder()); !got.IsZero() {
		t.Fatalf("requestStart of a writer instrument did not make = %v; want zero", got)
	}
}
