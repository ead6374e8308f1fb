package products

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput sends malformed requests; each gets its 4xx problem and
// writes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica("a", "tiered")
	id, _ := a.create(t, "existing", 100)["id"].(string)
	item := "/products/" + id
	long := strings.Repeat("é", MaxNameLen+1)
	huge := `{"name":"x","price_cents":1,"description":"` + strings.Repeat("a", MaxBodyBytes) + `"}`

	tests := []struct {
		name, method, path, body string
		header                   []string
		want                     int
	}{
		{"broken JSON", "POST", "/products", `{"name":`, nil, 400},
		{"not JSON", "POST", "/products", `name=x`, nil, 400},
		{"empty body", "POST", "/products", ``, []string{"Content-Type", "application/json"}, 400},
		{"array body", "POST", "/products", `[]`, nil, 400},
		{"null body", "POST", "/products", `null`, nil, 400},
		{"trailing data", "POST", "/products", `{"name":"x","price_cents":1} {}`, nil, 400},
		{"unknown field", "POST", "/products", `{"name":"x","price_cents":1,"id":"x"}`, nil, 400},
		{"field name in capitals", "POST", "/products", `{"NAME":"x","price_cents":1}`, nil, 400},
		{"version field", "PUT", item, `{"name":"x","price_cents":1,"version":9}`, nil, 400},
		{"name missing", "POST", "/products", `{"price_cents":1}`, nil, 400},
		{"name null", "POST", "/products", `{"name":null,"price_cents":1}`, nil, 400},
		{"name number", "POST", "/products", `{"name":5,"price_cents":1}`, nil, 400},
		{"name empty", "POST", "/products", `{"name":"","price_cents":1}`, nil, 400},
		{"name blank", "POST", "/products", `{"name":" \t ","price_cents":1}`, nil, 400},
		{"name too long", "POST", "/products", `{"name":"` + long + `","price_cents":1}`, nil, 400},
		{"name NUL", "POST", "/products", `{"name":"a\u0000b","price_cents":1}`, nil, 400},
		{"name newline", "PUT", item, `{"name":"a\nb","price_cents":1}`, nil, 400},
		{"description too long", "POST", "/products", `{"name":"x","description":"` + strings.Repeat("d", MaxDescriptionLen+1) + `","price_cents":1}`, nil, 400},
		{"description control", "POST", "/products", `{"name":"x","description":"bell\u0007","price_cents":1}`, nil, 400},
		{"description number", "POST", "/products", `{"name":"x","description":1,"price_cents":1}`, nil, 400},
		{"price missing", "POST", "/products", `{"name":"x"}`, nil, 400},
		{"price null", "POST", "/products", `{"name":"x","price_cents":null}`, nil, 400},
		{"price string", "POST", "/products", `{"name":"x","price_cents":"100"}`, nil, 400},
		{"price float", "POST", "/products", `{"name":"x","price_cents":10.5}`, nil, 400},
		{"price integral float", "PUT", item, `{"name":"x","price_cents":10.0}`, nil, 400},
		{"price exponent", "POST", "/products", `{"name":"x","price_cents":1e3}`, nil, 400},
		{"price negative", "POST", "/products", `{"name":"x","price_cents":-1}`, nil, 400},
		{"price over max", "POST", "/products", `{"name":"x","price_cents":1000000000001}`, nil, 400},
		{"price huge", "POST", "/products", `{"name":"x","price_cents":99999999999999999999999999}`, nil, 400},
		{"price bool", "POST", "/products", `{"name":"x","price_cents":true}`, nil, 400},
		{"price object", "PUT", item, `{"name":"x","price_cents":{}}`, nil, 400},
		{"body over 1 MiB", "POST", "/products", huge, nil, 413},
		{"body over 1 MiB on PUT", "PUT", item, huge, nil, 413},
		{"text/plain", "POST", "/products", `{"name":"x","price_cents":1}`, []string{"Content-Type", "text/plain"}, 415},
		{"no content type", "POST", "/products", `{"name":"x","price_cents":1}`, []string{"Content-Type", ""}, 415},
		{"form", "PUT", item, `{"name":"x","price_cents":1}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"invalid UUID on PUT", "PUT", "/products/123", `{"name":"x","price_cents":1}`, nil, 400},
		{"invalid UUID on DELETE", "DELETE", "/products/" + strings.ToUpper(id)[:35] + "g", ``, nil, 400},
		{"UUID without dashes", "GET", "/products/" + strings.ReplaceAll(id, "-", ""), ``, nil, 400},
		{"NUL in id", "GET", "/products/%00" + id[1:], ``, nil, 400},
		{"limit zero", "GET", "/products?limit=0", ``, nil, 400},
		{"limit too big", "GET", "/products?limit=201", ``, nil, 400},
		{"limit not a number", "GET", "/products?limit=ten", ``, nil, 400},
		{"limit twice", "GET", "/products?limit=1&limit=2", ``, nil, 400},
		{"after not a UUID", "GET", "/products?after=abc", ``, nil, 400},
		{"malformed If-Match", "PUT", item, `{"name":"x","price_cents":1}`, []string{"If-Match", "1"}, 400},
		{"malformed If-Match on DELETE", "DELETE", item, ``, []string{"If-Match", `"1`}, 400},
		{"stale If-Match", "PUT", item, `{"name":"x","price_cents":1}`, []string{"If-Match", `"2"`}, 412},
		{"stale If-Match on DELETE", "DELETE", item, ``, []string{"If-Match", `"0"`}, 412},
		{"unknown id", "PUT", "/products/00000000-0000-7000-8000-000000000000", `{"name":"x","price_cents":1}`, nil, 404},
		{"name invalid UTF-8", "POST", "/products", "{\"name\":\"a\xffb\",\"price_cents\":1}", nil, 400},
		{"description invalid UTF-8", "PUT", item, "{\"name\":\"x\",\"description\":\"\xc3\",\"price_cents\":1}", nil, 400},
		{"name lone surrogate", "POST", "/products", `{"name":"a\ud800b","price_cents":1}`, nil, 400},
		{"PATCH", "PATCH", item, `{"name":"x"}`, nil, 405},
		{"POST to an item", "POST", item, `{"name":"x","price_cents":1}`, nil, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, tt.method, a.url+tt.path, tt.body, tt.header...)
			wantProblem(t, resp, tt.want)
			if n := a.rowCount(t); n != 1 {
				t.Fatalf("got %d rows, want 1", n)
			}
			p, err := a.store.Get(context.Background(), mustParse(t, id))
			if err != nil || p.Version != 1 || p.Name != "existing" || p.PriceCents != 100 {
				t.Fatalf("the existing product changed: %+v, %v", p, err)
			}
		})
	}
	// Invalid UTF-8 is refused naming the field, never stored as U+FFFD.
	for _, tt := range []struct{ body, field string }{
		{"{\"name\":\"caf\xe9\",\"price_cents\":1}", "name"},
		{"{\"name\":\"x\",\"description\":\"\xed\xa0\x80\",\"price_cents\":1}", "description"},
		{`{"name":"x","description":"\udc00","price_cents":1}`, "description"},
		{`{"name":"\ud83d\u0041","price_cents":1}`, "name"},
	} {
		resp := do(t, http.MethodPost, a.url+"/products", tt.body)
		wantProblem(t, resp, http.StatusBadRequest)
		var p Problem
		if err := json.Unmarshal(resp.body, &p); err != nil || len(p.Errors) != 1 || p.Errors[0].Field != tt.field {
			t.Fatalf("%q: got %s, want one error naming %s", tt.body, resp.body, tt.field)
		}
	}
	// The valid edges are accepted: the largest fields, and a surrogate pair
	// or an escaped U+FFFD, which are valid.
	for _, body := range []string{
		`{"name":"\ud83d\ude00 \ufffd","price_cents":1}`,
		"{\"name\":\"\xef\xbf\xbd\",\"price_cents\":1}",
	} {
		wantStatus(t, do(t, http.MethodPost, a.url+"/products", body), http.StatusCreated)
	}
	for _, body := range []string{
		`{"name":"` + strings.Repeat("é", MaxNameLen) + `","price_cents":0}`,
		`{"name":"x","description":"` + strings.Repeat("d", MaxDescriptionLen-2) + `\n\t","price_cents":1000000000000}`,
	} {
		wantStatus(t, do(t, http.MethodPost, a.url+"/products", body, "Content-Type", "application/json; charset=utf-8"), http.StatusCreated)
	}
}
