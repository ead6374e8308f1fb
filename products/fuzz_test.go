package products

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecodeInput feeds arbitrary bodies to DecodeInput. Whatever it
// accepts obeys docs/design.md §4 and survives a round trip through JSON; whatever
// it refuses is a validation error whose problem body is valid JSON.
func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","price_cents":0}`,
		`{"name":" a ","description":"x\ny\tz","price_cents":1000000000000}`,
		`{"name":"a","description":null,"price_cents":5}`,
		`{"name":"\ud83d\ude00","price_cents":1}`,
		`{"name":"\ud800","price_cents":1}`,
		"{\"name\":\"\xff\",\"price_cents\":1}",
		`{"name":"a","price_cents":1e3}`,
		`{"name":"a","price_cents":-0}`,
		`{"NAME":"a","price_cents":1}`,
		`{"name":"a","name":"b","price_cents":1}`,
		`{"name":"a","price_cents":1} {}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := DecodeInput(bytes.NewReader(body))
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Fields) == 0 {
				t.Fatalf("refused without a validation error: %v", err)
			}
			b, merr := json.Marshal(Problem{Status: 400, Detail: verr.Detail(), Errors: verr.Fields})
			if merr != nil || !utf8.Valid(b) {
				t.Fatalf("problem body: %v", merr)
			}
			return
		}
		checkAccepted(t, in)
		// U+FFFD only when the client sent it, never as a stand-in for bad bytes.
		if strings.ContainsRune(in.Name+in.Description, utf8.RuneError) &&
			!bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("accepted %+v: U+FFFD the body did not hold", in)
		}
		b, _ := json.Marshal(map[string]any{"name": in.Name, "description": in.Description, "price_cents": in.PriceCents})
		again, err := DecodeInput(bytes.NewReader(b))
		if err != nil || again != in {
			t.Fatalf("round trip of %+v: got %+v, %v", in, again, err)
		}
	})
}

func checkAccepted(t *testing.T, in Input) {
	t.Helper()
	for field, s := range map[string]string{"name": in.Name, "description": in.Description} {
		if !utf8.ValidString(s) {
			t.Fatalf("accepted %s %q: not valid UTF-8", field, s)
		}
		for _, r := range s {
			if unicode.IsControl(r) && (field == "name" || r != '\n' && r != '\t') {
				t.Fatalf("accepted %s %q with control character %U", field, s, r)
			}
		}
	}
	if n := utf8.RuneCountInString(in.Name); n < 1 || n > MaxNameLen || strings.TrimSpace(in.Name) != in.Name {
		t.Fatalf("accepted name %q", in.Name)
	}
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLen {
		t.Fatalf("accepted a description of %d characters", utf8.RuneCountInString(in.Description))
	}
	if in.PriceCents < 0 || in.PriceCents > MaxPriceCents {
		t.Fatalf("accepted price %d", in.PriceCents)
	}
}

// FuzzListParams feeds arbitrary query strings to the parser of
// GET /products?limit=N&after=ID: whatever it accepts is in range, and the
// cursor it returns is the one given.
func FuzzListParams(f *testing.F) {
	for _, s := range []string{
		"", "limit=1", "limit=200", "limit=201", "limit=0", "limit=-1", "limit=+5", "limit=05",
		"limit=1&limit=2", "limit=9223372036854775808", "after=00000000-0000-7000-8000-000000000000",
		"after=0192F0A4-7C1E-7B3A-9A4E-3F6D2C1B0A99&limit=3", "after={0192f0a4-7c1e-7b3a-9a4e-3f6d2c1b0a99}",
		"after=urn:uuid:0192f0a4-7c1e-7b3a-9a4e-3f6d2c1b0a99", "after=0192f0a47c1e7b3a9a4e3f6d2c1b0a99",
		"after=%00", "limit=%31", "limit", "after=", ";;&&==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/products", RawQuery: raw}}
		limit, after, err := listParams(r)
		if err != nil {
			return
		}
		q := r.URL.Query()
		if limit < 1 || limit > MaxLimit || len(q["limit"]) > 1 || len(q["after"]) > 1 {
			t.Fatalf("%q: accepted limit %d", raw, limit)
		}
		if _, ok := q["limit"]; !ok && limit != DefaultLimit {
			t.Fatalf("%q: limit %d without a limit parameter", raw, limit)
		}
		if v, ok := q["after"]; ok && !strings.EqualFold(after.String(), v[0]) {
			t.Fatalf("%q: cursor %s is not the one given", raw, after)
		}
	})
}
