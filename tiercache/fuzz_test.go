package tiercache

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeMessage feeds arbitrary payloads to the invalidation decoder, as
// any client that may PUBLISH on the channel could: it never panics, and
// whatever it accepts is a message of this version from a named publisher
// that encodes and decodes to itself.
func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"src":"a","inc":"x","seq":7,"ts":1732900000000000,"keys":["product:1"],"groups":{"products:list":42}}`,
		`{"v":1,"src":"a","seq":1,"flush":true}`,
		`{"v":2,"src":"a","seq":1}`,
		`{"v":1,"keys":["k"]}`,
		`{"v":1,"src":"a","seq":-1}`,
		`{"v":1,"src":"a","groups":{"g":1e30}}`,
		`nonsense`, ``, `null`, `[]`, `{"v":1,"src":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := decodeMessage(payload)
		if err != nil {
			return
		}
		if m.V != messageVersion || m.Src == "" {
			t.Fatalf("accepted %q as %+v", payload, m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		again, err := decodeMessage(b)
		if err != nil || again.Src != m.Src || again.Seq != m.Seq || len(again.Keys) != len(m.Keys) || len(again.Groups) != len(m.Groups) {
			t.Fatalf("round trip of %q: got %+v %v, want %+v", payload, again, err, m)
		}
	})
}
