package products

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/tiercache/productcache/tiercache"
)

// Entry is a cached answer, ready to serve: an L1 hit writes Body as it is.
type Entry struct {
	Body    []byte // the encoded JSON of a product or a list page
	ETag    string // `"<version>"` for a product, empty for a list page
	Version int64  // the product's version, 0 for a list page

	// The header values of ETag and Content-Length, built once per fill
	// so that serving the entry allocates nothing for them. Shared by every
	// response: read, never modified. lengthHeader is nil for a body that
	// net/http buffers whole: it then writes the length itself, without
	// the header map entry, the parse and the copy a handler's costs.
	etagHeader   []string
	lengthHeader []string
}

// bufferedBody is the largest body net/http buffers before it picks
// between Content-Length and chunked encoding (its
// bufferBeforeChunkingSize): a handler that writes at most this much and
// returns gets a Content-Length without setting one.
const bufferedBody = 2048

func newEntry(body []byte, version int64) Entry {
	e := Entry{Body: body, Version: version}
	if len(body) > bufferedBody {
		e.lengthHeader = []string{strconv.Itoa(len(body))}
	}
	if version > 0 {
		e.ETag = etag(version)
		e.etagHeader = []string{e.ETag}
	}
	return e
}

func productEntry(p Product) (Entry, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return Entry{}, err
	}
	return newEntry(b, p.Version), nil
}

func pageEntry(pg Page) (Entry, error) {
	b, err := json.Marshal(pg)
	if err != nil {
		return Entry{}, err
	}
	return newEntry(b, 0), nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// EntryCodec stores an Entry in L2 as its version (8 bytes, big-endian)
// followed by the body; the ETag is derived from the version.
type EntryCodec struct{}

var _ tiercache.Codec[Entry] = EntryCodec{}

// Marshal encodes e.
func (EntryCodec) Marshal(e Entry) ([]byte, error) {
	b := make([]byte, 8, 8+len(e.Body))
	binary.BigEndian.PutUint64(b, uint64(e.Version))
	return append(b, e.Body...), nil
}

// errShortEntry is returned for an L2 value too short to be an Entry.
var errShortEntry = errors.New("products: cached entry too short")

// Unmarshal decodes what Marshal wrote.
func (EntryCodec) Unmarshal(b []byte) (Entry, error) {
	if len(b) < 8 {
		return Entry{}, errShortEntry
	}
	return newEntry(b[8:], int64(binary.BigEndian.Uint64(b))), nil
}
