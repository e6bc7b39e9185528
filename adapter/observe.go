package adapter

import (
	"net/http"
	"strings"
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
	case opGet:
		return OpGet
	case opSet:
		return OpSet
	case opPatch:
		return OpPatch
	case opDelete:
		return OpDelete
	case opRange:
		return OpRange
	case opIncrement:
		return OpIncrement
	case opCAS:
		return OpCAS
	case opSubscribe:
		return OpSubscribe
	case opUnsubscribe:
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
