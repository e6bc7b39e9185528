package adapter

import (
	"net/http"
	"strings"

	"github.com/livekv/livekv/internal/wire"
)

// The operations that Options.OnRequest names.
const (
	OpGet         = "get"
	OpSet         = "set"
	OpPatch       = "patch"
	OpDelete      = "delete"
	OpRange       = "range"
	OpIncrement   = "increment"
	OpCAS         = "cas"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpToken       = "token"   // POST /token/websocket
	OpInvalid     = "invalid" // a message or request that names no operation
)

// opName is the name of a wire operation.
func opName(op int) string {
	switch op {
	case wire.OpGet:
		return OpGet
	case wire.OpSet:
		return OpSet
	case wire.OpPatch:
		return OpPatch
	case wire.OpDelete:
		return OpDelete
	case wire.OpRange:
		return OpRange
	case wire.OpIncrement:
		return OpIncrement
	case wire.OpCAS:
		return OpCAS
	case wire.OpSubscribe:
		return OpSubscribe
	case wire.OpUnsubscribe:
		return OpUnsubscribe
	}
	return OpInvalid
}

// restOp is the operation a REST request asks for, by its route and
// method; POST /record with partialUpdate is OpPatch, which serveREST
// learns from the body.
func restOp(route, method string) string {
	switch {
	case route == "token/websocket" && method == http.MethodPost:
		return OpToken
	case route == "record" && method == http.MethodPost:
		return OpSet
	case route == "record/atomic" && method == http.MethodPost:
		return OpIncrement
	case route == "records" && method == http.MethodGet:
		return OpRange
	case strings.HasPrefix(route, "record/") && method == http.MethodGet:
		return OpGet
	case strings.HasPrefix(route, "record/") && method == http.MethodDelete:
		return OpDelete
	}
	return OpInvalid
}

func (hpkvDialect) observed(req, answer any) (string, int) {
	op := OpInvalid
	if r, ok := req.(*request); ok {
		op = opName(r.Op)
	}
	code := http.StatusOK
	if rep, ok := answer.(reply); ok {
		code = rep.Code
	}
	return op, code
}

// DBX operations are named OpDBXPrefix and the method: "dbx.string.get".
const OpDBXPrefix = "dbx."

func (dbxDialect) observed(req, answer any) (string, int) {
	op := OpInvalid
	if r, ok := req.(*dbxRequest); ok && r.Method != "" {
		op = OpDBXPrefix + r.Method
	}
	code := http.StatusOK
	if m, ok := answer.(dbxMessage); ok && m.Error != nil {
		code = dbxStatus(m.Error.Code)
	}
	return op, code
}

// dbxStatus is the HPKV code (an HTTP status) of a DBX error code, as
// dbxCode maps them the other way.
func dbxStatus(code string) int {
	switch code {
	case dbxNotFound:
		return http.StatusNotFound
	case dbxInvalidKey, dbxInvalidValue, dbxInvalidTTL, dbxTypeMismatch, dbxInvalidRequest, dbxUnsupported:
		return http.StatusBadRequest
	case dbxUnauthorized:
		return http.StatusUnauthorized
	case dbxForbidden:
		return http.StatusForbidden
	case dbxRateLimited:
		return http.StatusTooManyRequests
	case dbxUnavailable:
		return http.StatusServiceUnavailable
	case dbxCompacted:
		return http.StatusGone
	case dbxQuotaExceeded:
		return http.StatusInsufficientStorage
	case dbxWorkExceeded:
		return http.StatusRequestEntityTooLarge
	}
	if s := codeStatus(code); s != 0 {
		return s
	}
	return http.StatusInternalServerError
}

// observe counts a request answered with code.
func (a *Adapter) observe(op string, code int) {
	if code == http.StatusTooManyRequests {
		a.stats.throttled.Add(1)
	}
	if a.opts.OnRequest != nil {
		a.opts.OnRequest(op, code)
	}
}

// restWriter counts the bytes of a REST response and keeps its status,
// for observe.
type restWriter struct {
	http.ResponseWriter
	a      *Adapter
	op     string
	status int
}

func (w *restWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *restWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.a.stats.bytesOut.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *restWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
