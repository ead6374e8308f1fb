package tiercache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
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
// and the TTL, 8 bytes each, big-endian), so a reader knows how much of the
// TTL is left without asking Redis (PTTL would be one more command per hit):
// eager refresh needs it (docs/design.md §3.18). The TTL field is counted
// from when the load that read the value began, not from the fill (it is
// the TTL set plus the load's duration), so expiry minus TTL is when the
// value was read from the database: the age of a fail-safe copy taken from
// L2 (§3.16). Values without the header (from a replica of an older
// version) still decode.
const (
	tagValue    = 'v'
	tagNegative = 'n'
	tagStamped  = 't'
	stampLen    = 17
)

// l2Stamp is when an L2 value expires (unix milliseconds, by the filling
// replica's wall clock) and its lifetime up to then from the start of the
// load that read it (milliseconds); zero if unknown.
type l2Stamp struct{ expires, ttl int64 }

// stampFill is the stamp of a fill at now (the wall clock) of a value with
// the L2 TTL ttl whose load began loadAge ago. The load's start is rounded
// down to the millisecond, so the age a reader derives is never short.
func stampFill(now time.Time, loadAge, ttl time.Duration) l2Stamp {
	expires := now.Add(ttl).UnixMilli()
	return l2Stamp{expires: expires, ttl: expires - now.Add(-loadAge).UnixMilli()}
}

// loaded is when the load that read the value began, by the filling
// replica's wall clock; false for a value without a stamp.
func (st l2Stamp) loaded() (time.Time, bool) {
	if st.ttl <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(st.expires - st.ttl), true
}

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
