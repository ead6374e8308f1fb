package tiercache

import "encoding/json"

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
const (
	tagValue    = 'v'
	tagNegative = 'n'
)

func encodeL2(neg bool, payload []byte) []byte {
	if neg {
		return []byte{tagNegative}
	}
	b := make([]byte, 0, len(payload)+1)
	b = append(b, tagValue)
	return append(b, payload...)
}

// decodeL2 splits a stored L2 value; anything not tagged as a value is
// treated as negative only when it is exactly the negative tag.
func decodeL2(raw []byte) (neg bool, payload []byte) {
	if len(raw) == 1 && raw[0] == tagNegative {
		return true, nil
	}
	if len(raw) > 0 && raw[0] == tagValue {
		return false, raw[1:]
	}
	return false, raw
}
