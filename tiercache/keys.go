package tiercache

import (
	"fmt"
	"strconv"
	"strings"
)

// validKey rejects a key or group name the cache cannot hold: one that
// contains NUL, which groupedKey uses as its separator (docs/design.md
// §3.12). Any other string is a valid key, the empty one included.
func validKey(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %q contains NUL", ErrInvalidKey, s)
	}
	return nil
}

// validKeys is validKey for every key and group of an invalidation. A
// group may not be empty either: [InGroup]("") reads no group, so a group
// "" would hold nothing to retire, and retiring it could never work.
func validKeys(keys, groups []string) error {
	for _, g := range groups {
		if g == "" {
			return fmt.Errorf("%w: the empty group name (InGroup(\"\") reads no group)", ErrInvalidKey)
		}
	}
	for _, list := range [][]string{keys, groups} {
		for _, s := range list {
			if err := validKey(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// groupedKey is the cache key of key read in group at generation gen:
// "\x00<group>\x00<gen>:<key>", or key itself without a group. Neither keys
// nor groups contain NUL, so the first NUL marks a grouped key, the second
// ends the group, and the first ':' after it ends the generation: no two
// different reads share a cache key, whatever their names hold.
func groupedKey(group string, gen uint64, key string) string {
	if group == "" {
		return key
	}
	return "\x00" + group + "\x00" + strconv.FormatUint(gen, 10) + ":" + key
}

// The Redis keys of one cache key (its value, its lease and its fail-safe
// copy, docs/design.md §3.16) all carry the same hash tag, built by
// hashTag from the escaped key, so they share one Cluster slot whatever
// the key holds: "", "}x" and "{a}b" included (docs/design.md §3.12).
func (l *l2) valueKey(key string) string { return l.opt.Namespace + ":v:{" + hashTag(key) + "}" }
func (l *l2) leaseKey(key string) string { return l.opt.Namespace + ":l:{" + hashTag(key) + "}" }
func (l *l2) groupKey(g string) string   { return l.opt.Namespace + ":g:{" + hashTag(g) + "}" }
func (l *l2) copyKey(key string) string  { return l.opt.Namespace + ":s:{" + hashTag(key) + "}" }

// tagEscaper writes '%' and '}' as "%25" and "%7D": the result holds no
// '}', which would end the hash tag early, and tells every key apart.
var tagEscaper = strings.NewReplacer("%", "%25", "}", "%7D")

// hashTag is the content of key's hash tag: never empty (Redis ignores
// an empty tag, "{}", and hashes the whole name), never holding '}', and
// different for different keys. A key without '%' or '}' is its own tag.
func hashTag(key string) string {
	if key == "" {
		return "%"
	}
	return tagEscaper.Replace(key)
}
