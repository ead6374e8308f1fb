package tiercache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Codec turns values into the bytes stored in L2 and back. L1 holds values
// as they are, so a Codec runs only on L2 reads and fills.
type Codec[V any] interface {
	Marshal(v V) ([]byte, error)
	Unmarshal(b []byte) (V, error)
}

// JSONCodec is a [Codec] using encoding/json.
type JSONCodec[V any] struct{}

// Marshal encodes v as JSON.
func (JSONCodec[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a new V.
func (JSONCodec[V]) Unmarshal(b []byte) (V, error) {
	var v V
	err := json.Unmarshal(b, &v)
	return v, err
}

// BytesCodec is a [Codec] for values that already are bytes.
type BytesCodec struct{}

// Marshal returns b itself.
func (BytesCodec) Marshal(b []byte) ([]byte, error) { return b, nil }

// Unmarshal returns b itself.
func (BytesCodec) Unmarshal(b []byte) ([]byte, error) { return b, nil }

// L2 values carry one tag byte so a cached "not found" is told from a value.
// A fill stamps its value with a header first (tagStamped, then the expiry
// and the TTL it set, 8 bytes each, big-endian), so a reader knows how much
// of the TTL is left without asking Redis (PTTL would be one more command per
// hit): eager refresh needs it (docs/design.md §3.18). Values without the
// header (from a replica of an older version) still decode.
const (
	tagValue    = 'v'
	tagNegative = 'n'
	tagStamped  = 't'
	stampLen    = 17
)

// l2Stamp is when an L2 value expires (unix milliseconds, by the filling
// replica's clock) and the TTL it was given (milliseconds); zero if unknown.
type l2Stamp struct{ expires, ttl int64 }

func encodeL2(neg bool, payload []byte, st l2Stamp) []byte {
	b := make([]byte, stampLen, stampLen+1+len(payload))
	b[0] = tagStamped
	binary.BigEndian.PutUint64(b[1:], uint64(st.expires))
	binary.BigEndian.PutUint64(b[9:], uint64(st.ttl))
	if neg {
		return append(b, tagNegative)
	}
	b = append(b, tagValue)
	return append(b, payload...)
}

// decodeL2 splits a stored L2 value; anything not tagged as a value is
// treated as negative only when it is exactly the negative tag.
func decodeL2(raw []byte) (neg bool, payload []byte, st l2Stamp) {
	if len(raw) > stampLen && raw[0] == tagStamped {
		st.expires = int64(binary.BigEndian.Uint64(raw[1:]))
		st.ttl = int64(binary.BigEndian.Uint64(raw[9:]))
		raw = raw[stampLen:]
	}
	if len(raw) == 1 && raw[0] == tagNegative {
		return true, nil, st
	}
	if len(raw) > 0 && raw[0] == tagValue {
		return false, raw[1:], st
	}
	return false, raw, st
}

// unmarshal decodes with c, turning a panic of the codec into an error: a
// value the codec cannot decode is a miss, whichever way it fails
// (docs/design.md §3.12).
func unmarshal[V any](c Codec[V], b []byte) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tiercache: codec panicked decoding: %v", r)
		}
	}()
	return c.Unmarshal(b)
}

// marshal encodes with c, turning a panic of the codec into an error: the
// loaded value is still returned, only not stored in L2.
func marshal[V any](c Codec[V], v V) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tiercache: codec panicked encoding: %v", r)
		}
	}()
	return c.Marshal(v)
}
