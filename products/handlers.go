package products

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 1 << 20

// Defaults and bounds of GET /products.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Header values shared by every answer, so a hot path allocates nothing
// for them. net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	l1HitStatus     = []string{statusL1Hit}
)

// errMalformedID answers a /products/{id} whose id is not a UUID.
var errMalformedID = errors.New("malformed product id, want a UUID")

// parseID parses the {id} of /products/{id}: a UUID in its canonical 36
// character form (any case). Cache keys are built from the parsed value
// only. The id is read from the path the router matched rather than from
// httprouter's context parameters, which cost the hottest route three
// allocations per request.
func parseID(r *http.Request) (uuid.UUID, error) {
	s, ok := strings.CutPrefix(r.URL.Path, "/products/")
	if !ok {
		return uuid.Nil, errMalformedID
	}
	var key [36]byte
	return parseCanonicalUUID(s, key[:])
}

// parseCanonicalUUID parses xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex
// digits of either case), the one form uuid.Parse accepts at 36
// characters, writing its canonical lower-case form into key[:36] on the
// way: the cache key needs it, and the hot path would otherwise encode the
// parsed value again.
func parseCanonicalUUID(s string, key []byte) (uuid.UUID, error) {
	var id uuid.UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return uuid.Nil, errMalformedID
	}
	key = key[:36]
	key[8], key[13], key[18], key[23] = '-', '-', '-', '-'
	for j, i := range uuidDigitPairs {
		hi, lo := hexValue[s[i]], hexValue[s[i+1]]
		if hi|lo == 0xff {
			return uuid.Nil, errMalformedID
		}
		id[j] = hi<<4 | lo
		key[i], key[i+1] = lowerHex[hi], lowerHex[lo]
	}
	return id, nil
}

// uuidDigitPairs are where the 16 bytes of a canonical UUID start.
var uuidDigitPairs = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

const lowerHex = "0123456789abcdef"

// hexValue maps a hex digit to its value and every other byte to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range lowerHex {
		t[c] = byte(i)
		if c >= 'a' {
			t[c-'a'+'A'] = byte(i)
		}
	}
	return t
}()

// handleGetProduct serves GET /products/{id}.
func handleGetProduct(logger *slog.Logger, svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text, _ := strings.CutPrefix(r.URL.Path, "/products/")
		e, ans, err := svc.productByText(r.Context(), requestStart(w), text, svc.failSafeOptions(svc.staleAllowance(r)))
		if errors.Is(err, errMalformedID) {
			writeProblem(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		setCacheStatus(w, ans.status)
		if ans.stale {
			w.Header()["Age"] = []string{strconv.FormatInt(ageSeconds(ans.age), 10)}
		}
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeEntry(w, r, e, http.StatusOK)
	})
}

// handleListProducts serves GET /products?limit=N&after=ID, and
// GET /products?ids=<id>,... (serveBatch).
func handleListProducts(logger *slog.Logger, svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if list, ok := r.URL.Query()["ids"]; ok {
			if err := serveBatch(w, r, svc, strings.Join(list, ",")); err != nil {
				writeError(w, r, logger, err)
			}
			return
		}
		limit, after, err := listParams(r)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		e, status, err := svc.List(r.Context(), limit, after)
		setCacheStatus(w, status)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeEntry(w, r, e, http.StatusOK)
	})
}

func listParams(r *http.Request) (int, uuid.UUID, error) {
	q := r.URL.Query()
	limit := DefaultLimit
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > MaxLimit || len(v) > 1 {
			return 0, uuid.Nil, errors.New("limit must be one integer from 1 to 200")
		}
		limit = n
	}
	after := uuid.Nil
	if v, ok := q["after"]; ok {
		id, err := uuid.Parse(v[0])
		if err != nil || len(v[0]) != 36 || len(v) > 1 {
			return 0, uuid.Nil, errors.New("after must be a product id (a UUID)")
		}
		after = id
	}
	return limit, after, nil
}

// handleCreateProduct serves POST /products.
func handleCreateProduct(logger *slog.Logger, svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, ok := readInput(w, r)
		if !ok {
			return
		}
		e, id, err := svc.Create(r.Context(), in)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		w.Header().Set("Location", "/products/"+id.String())
		writeEntry(w, r, e, http.StatusCreated)
	})
}

// targetOfWrite reads the {id} and the If-Match precondition of a PUT or
// DELETE, answering 400 itself when either is malformed.
func targetOfWrite(w http.ResponseWriter, r *http.Request) (uuid.UUID, Precondition, bool) {
	id, err := parseID(r)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error(), nil)
		return uuid.Nil, nil, false
	}
	cond, err := precondition(r.Header.Get("If-Match"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed If-Match header, want an entity tag such as \"3\"", nil)
		return uuid.Nil, nil, false
	}
	return id, cond, true
}

// handleUpdateProduct serves PUT /products/{id}.
func handleUpdateProduct(logger *slog.Logger, svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, cond, ok := targetOfWrite(w, r)
		if !ok {
			return
		}
		in, ok := readInput(w, r)
		if !ok {
			return
		}
		e, err := svc.Update(r.Context(), id, in, cond)
		if err != nil {
			writeError(w, r, logger, err)
			return
		}
		writeEntry(w, r, e, http.StatusOK)
	})
}

// handleDeleteProduct serves DELETE /products/{id}.
func handleDeleteProduct(logger *slog.Logger, svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, cond, ok := targetOfWrite(w, r)
		if !ok {
			return
		}
		if err := svc.Delete(r.Context(), id, cond); err != nil {
			writeError(w, r, logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// readInput checks the content type, limits the body and decodes it,
// answering the request itself when it cannot.
func readInput(w http.ResponseWriter, r *http.Request) (Input, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, http.StatusUnsupportedMediaType, "the request body must be application/json", nil)
		return Input{}, false
	}
	in, err := DecodeInput(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	var verr *ValidationError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, http.StatusRequestEntityTooLarge, "the request body is over 1 MiB", nil)
		return Input{}, false
	case errors.As(err, &verr):
		writeProblem(w, http.StatusBadRequest, verr.Detail(), verr.Fields)
		return Input{}, false
	case err != nil:
		writeProblem(w, http.StatusBadRequest, "the request body could not be read", nil)
		return Input{}, false
	}
	return in, true
}

func setCacheStatus(w http.ResponseWriter, status string) {
	switch status {
	case "":
	case statusL1Hit:
		w.Header()["Cache-Status"] = l1HitStatus
	default:
		w.Header()["Cache-Status"] = []string{status}
	}
}

// writeEntry writes a ready-to-serve entry, or 304 when the client's
// If-None-Match already names it.
func writeEntry(w http.ResponseWriter, r *http.Request, e Entry, code int) {
	h := w.Header()
	if e.ETag != "" {
		h["Etag"] = e.etagHeader
		if code == http.StatusOK && noneMatch(firstValue(r.Header, "If-None-Match"), e.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h["Content-Type"] = jsonContentType
	if e.lengthHeader != nil {
		h["Content-Length"] = e.lengthHeader
	}
	w.WriteHeader(code)
	_, _ = w.Write(e.Body)
}

// firstValue is h.Get(key) for a key already in canonical form, without
// canonicalizing it again on every request.
func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// writeError maps a service error to its problem. A 500 says nothing of
// the cause, which goes to the log.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		writeProblem(w, http.StatusBadRequest, verr.Detail(), verr.Fields)
	case errors.Is(err, ErrNotFound):
		writeProblem(w, http.StatusNotFound, "no product has this id", nil)
	case errors.Is(err, ErrConflict):
		writeProblem(w, http.StatusPreconditionFailed, "the product is not at the version If-Match names", nil)
	case errors.Is(err, ErrOutcomeUnknown):
		logger.Warn("products: write outcome unknown", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "the connection to the database was lost after the write was sent: it may have been applied; read the product before trying again", nil)
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		logger.Warn("products: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "the database is unavailable, try again shortly", nil)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client is gone; nobody reads this answer.
		writeProblem(w, http.StatusServiceUnavailable, "request canceled", nil)
	default:
		logger.Error("products: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusInternalServerError, "internal error", nil)
	}
}

// handleHealthz serves GET /healthz: the process is up.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// handleReadyz serves GET /readyz: 200 when the database answers, else 503,
// with the state of every dependency.
func handleReadyz(svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rd := svc.Ready(r.Context())
		code := http.StatusOK
		if rd.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(rd)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = w.Write(append(b, '\n'))
	})
}

// handleMetrics serves GET /metrics from g in the Prometheus text format.
func handleMetrics(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// handleNotFound answers unknown paths.
func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no such resource", nil)
	})
}

// handleMethodNotAllowed answers a known path with the wrong method; the
// router has set Allow.
func handleMethodNotAllowed() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here", nil)
	})
}

// handleOptions answers OPTIONS on a known path; the router has set Allow.
func handleOptions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
}
