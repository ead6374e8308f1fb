package products

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the fields of a product (docs/design.md §4).
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 2000
	MaxPriceCents     = 1_000_000_000_000
)

// Input is what a client may set on a product: the body of POST and PUT.
type Input struct {
	Name        string
	Description string
	PriceCents  int64
}

// FieldError is one reason an input was refused.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// ValidationError lists why a request body was refused. It matches
// [ErrInvalid] under errors.Is.
type ValidationError struct {
	Fields []FieldError
}

// Error joins the field errors into one line.
func (e *ValidationError) Error() string { return "products: " + e.Detail() }

// Detail is the message for a client: every field error on one line.
func (e *ValidationError) Detail() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Detail: fmt.Sprintf(format, args...)}}}
}

// inputJSON is the wire form of Input. Pointers tell a missing or null
// field from an empty one; the price stays raw so a number is told from a
// string and an integer from a fraction.
type inputJSON struct {
	Name        *string
	Description *string
	PriceCents  json.RawMessage
}

// DecodeInput reads one JSON object from r and validates it. Unknown fields
// (names are matched exactly, unlike encoding/json's case-insensitive
// matching) and trailing data are refused. A read error (such as
// [http.MaxBytesError]) is returned as is; every other refusal is a
// [*ValidationError].
func DecodeInput(r io.Reader) (Input, error) {
	dec := json.NewDecoder(r)
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return Input{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return Input{}, decodeError(err)
		}
		return Input{}, invalid("body", "unexpected data after the JSON object")
	}
	if m == nil {
		return Input{}, invalid("body", "want a JSON object, got null")
	}
	w, err := fields(m)
	if err != nil {
		return Input{}, err
	}
	return w.validate()
}

// fields picks the known fields out of an object, refusing any other and
// any of the wrong JSON type.
func fields(m map[string]json.RawMessage) (inputJSON, error) {
	var w inputJSON
	var errs []FieldError
	for k, raw := range m {
		switch k {
		case "name":
			w.Name, errs = optionalString(k, raw, errs)
		case "description":
			w.Description, errs = optionalString(k, raw, errs)
		case "price_cents":
			w.PriceCents = raw
		default:
			if len(k) > 64 {
				k = strings.ToValidUTF8(k[:64], "") + "..." // the name is echoed to the client
			}
			errs = append(errs, FieldError{Field: k, Detail: "unknown field"})
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
		return w, &ValidationError{Fields: errs}
	}
	return w, nil
}

func optionalString(field string, raw json.RawMessage, errs []FieldError) (*string, []FieldError) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, errs
	}
	if len(raw) == 0 || raw[0] != '"' {
		return nil, append(errs, FieldError{Field: field, Detail: "want a string"})
	}
	// encoding/json replaces invalid UTF-8 and lone surrogate escapes with
	// U+FFFD; refuse them instead, so what is stored is what was sent.
	if !utf8.Valid(raw) {
		return nil, append(errs, FieldError{Field: field, Detail: "not valid UTF-8"})
	}
	if loneSurrogate(raw) {
		return nil, append(errs, FieldError{Field: field, Detail: "not valid UTF-8: a \\u escape of a lone surrogate"})
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, append(errs, FieldError{Field: field, Detail: "malformed string"})
	}
	return &s, errs
}

// loneSurrogate reports whether the JSON string raw (quotes included)
// holds a \u escape of a UTF-16 surrogate that is not half of a pair.
func loneSurrogate(raw []byte) bool {
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		r, ok := hex4(raw[i+2:])
		switch {
		case !ok:
			return false // malformed; json.Unmarshal refuses it
		case r >= 0xD800 && r < 0xDC00: // high half: a low half must follow
			lo, ok := hex4(raw[min(i+8, len(raw)):])
			if i+7 >= len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// hex4 parses the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(n), err == nil
}

// decodeError turns a json error into a ValidationError, leaving read errors
// (the body limit, a broken connection) alone.
func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("body", "empty body, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("body", "truncated JSON")
	case errors.As(err, &syn):
		return invalid("body", "malformed JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return invalid("body", "want a JSON object, got %s", typ.Value)
	case strings.HasPrefix(err.Error(), "json: "):
		return invalid("body", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

func (w inputJSON) validate() (Input, error) {
	var in Input
	var errs []FieldError
	add := func(e *ValidationError) {
		if e != nil {
			errs = append(errs, e.Fields...)
		}
	}
	if w.Name == nil {
		add(invalid("name", "required"))
	} else {
		in.Name = strings.TrimSpace(*w.Name)
		add(checkText("name", in.Name, 1, MaxNameLen, ""))
	}
	if w.Description != nil {
		in.Description = *w.Description
		add(checkText("description", in.Description, 0, MaxDescriptionLen, "\n\t"))
	}
	price, perr := parsePrice(w.PriceCents)
	add(perr)
	in.PriceCents = price
	if len(errs) > 0 {
		return Input{}, &ValidationError{Fields: errs}
	}
	return in, nil
}

// checkText checks the length in characters of s and refuses control
// characters other than those in allowed.
func checkText(field, s string, minLen, maxLen int, allowed string) *ValidationError {
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if n < minLen {
		return invalid(field, "must not be empty")
	}
	if n > maxLen {
		return invalid(field, "%d characters, at most %d allowed", n, maxLen)
	}
	for i, r := range s {
		if unicode.IsControl(r) && !strings.ContainsRune(allowed, r) {
			return invalid(field, "control character %U at byte %d", r, i)
		}
	}
	return nil
}

// parsePrice accepts a JSON integer from 0 to MaxPriceCents: no string, no
// fraction, no exponent.
func parsePrice(raw json.RawMessage) (int64, *ValidationError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, invalid("price_cents", "required")
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, invalid("price_cents", "want an integer, got %s", jsonKind(c))
	}
	if bytes.ContainsAny(raw, ".eE") {
		return 0, invalid("price_cents", "want an integer number of cents, got %s", raw)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 || n > MaxPriceCents {
		return 0, invalid("price_cents", "must be an integer from 0 to %d", int64(MaxPriceCents))
	}
	return n, nil
}

func jsonKind(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	if c == '-' || c >= '0' && c <= '9' {
		return "a number"
	}
	return "something else"
}
