package products

import (
	"errors"
	"strconv"
	"strings"
)

// errBadPrecondition is a malformed If-Match header.
var errBadPrecondition = errors.New("products: malformed If-Match header")

// entityTag is one parsed entity-tag (RFC 9110 §8.8.3).
type entityTag struct {
	weak   bool
	opaque string // between the quotes
}

// parseETags parses an If-Match or If-None-Match value: "*" or a comma
// separated list of entity tags. star reports "*".
func parseETags(v string) (tags []entityTag, star bool, err error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		return nil, true, nil
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var t entityTag
		if strings.HasPrefix(part, "W/") {
			t.weak, part = true, part[2:]
		}
		if len(part) < 2 || part[0] != '"' || part[len(part)-1] != '"' || strings.ContainsAny(part[1:len(part)-1], `" `) {
			return nil, false, errBadPrecondition
		}
		t.opaque = part[1 : len(part)-1]
		tags = append(tags, t)
	}
	if len(tags) == 0 {
		return nil, false, errBadPrecondition
	}
	return tags, false, nil
}

// noneMatch reports whether an If-None-Match value matches the current
// ETag, using the weak comparison RFC 9110 §13.1.2 asks for. A malformed
// header is ignored, as if absent.
func noneMatch(header, current string) bool {
	if header == "" || current == "" {
		return false
	}
	tags, star, err := parseETags(header)
	if err != nil {
		return false
	}
	if star {
		return true
	}
	want := strings.Trim(current, `"`)
	for _, t := range tags {
		if t.opaque == want {
			return true
		}
	}
	return false
}

// precondition turns an If-Match value into the versions that satisfy it,
// using the strong comparison of RFC 9110 §13.1.1: a weak tag matches
// nothing. An absent header or "*" (the product must exist, which every
// update and delete demands anyway) mean no condition.
func precondition(header string) (Precondition, error) {
	if header == "" {
		return nil, nil
	}
	tags, star, err := parseETags(header)
	if err != nil {
		return nil, err
	}
	if star {
		return nil, nil
	}
	cond := Precondition{}
	for _, t := range tags {
		if t.weak {
			continue
		}
		n, err := strconv.ParseInt(t.opaque, 10, 64)
		if err != nil {
			continue // someone else's tag: it never matches ours
		}
		cond = append(cond, n)
	}
	return cond, nil
}
