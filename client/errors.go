package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// Errors of the client's own. A server's error reply is an *Error, which
// errors.Is also matches against the engine's errors (engine.ErrNotFound,
// engine.ErrConflict, engine.ErrNotInteger, engine.ErrTooLarge, ...) and
// against these.
var (
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("livekv client: closed")

	// ErrConnectionLost is returned by a request whose connection dropped
	// before its reply came: whether a write was applied is unknown. The
	// next call connects again.
	ErrConnectionLost = errors.New("livekv client: connection lost")

	// ErrUnauthorized: no credentials, or an expired token (HTTP 401).
	ErrUnauthorized = errors.New("livekv client: unauthorized")
	// ErrForbidden: a wrong API key or token, or a key outside the
	// token's access pattern (403).
	ErrForbidden = errors.New("livekv client: forbidden")
	// ErrBadRequest: the server refused the request as malformed (400).
	ErrBadRequest = errors.New("livekv client: bad request")
	// ErrRateLimited: over the connection's request rate, or a cap on
	// subscriptions (429).
	ErrRateLimited = errors.New("livekv client: rate limited")
	// ErrSubscriptionLimit: a subscribe over a cap on the subscriptions
	// (or their patterns) of the connection or of its token (a 429 that
	// says so; also ErrRateLimited). A subscription the client resumes
	// over the connection's cap ends with it: close another to make room.
	ErrSubscriptionLimit = errors.New("livekv client: subscription limit")
	// ErrUnavailable: the server is shutting down, could not decide on a
	// key's access in time, or is a cluster node that refused the request
	// without doing anything (503); try again.
	ErrUnavailable = errors.New("livekv client: unavailable")
	// ErrQuotaExceeded: the write would pass a storage quota (507);
	// nothing was written.
	ErrQuotaExceeded = errors.New("livekv client: quota exceeded")

	// ErrBadMessage: the server sent a message the client cannot use
	// (malformed, or against the protocol: a subscribe reply repeated,
	// or naming a subscription the connection already has).
	// The connection is dropped, and the subscriptions on it end with
	// this error rather than resume, since resuming would bring the same
	// message again; calls under way fail with ErrConnectionLost and this
	// error. A subscription whose revisions go back ends with it alone,
	// its connection kept.
	ErrBadMessage = errors.New("livekv client: bad message from the server")
	// ErrMessageTooLarge: a message from the server passed
	// Options.ReadLimit. As with ErrBadMessage, the connection is
	// dropped, its subscriptions end with this error, and calls under
	// way fail with ErrConnectionLost and this error: raise ReadLimit
	// above the largest value the server holds.
	ErrMessageTooLarge = errors.New("livekv client: message over the read limit")
)

// Errors of a server that is a node of a cluster, by the code its reply
// carries (see docs/protocol.md, "Cluster error codes"). All but
// ErrUncertain are also ErrUnavailable (503): nothing was done, and the
// request may be sent again, to this node later or to another.
var (
	// ErrNotCommitted: the write did not commit and never will.
	ErrNotCommitted = errors.New("livekv client: write not committed")
	// ErrUncertain: the node could not learn in time whether the write
	// committed (504); it may have happened or not. Read the key to know.
	ErrUncertain = errors.New("livekv client: write outcome unknown")
	// ErrNoLeader: the node reached no leader (an election, or a minority
	// partition); nothing was done.
	ErrNoLeader = errors.New("livekv client: no leader")
	// ErrNotLeader: only the leader may serve the request, such as a read
	// at the leader level.
	ErrNotLeader = errors.New("livekv client: not the leader")
	// ErrBehind: the node has not applied the revision the request asks
	// for in time.
	ErrBehind = errors.New("livekv client: node behind the requested revision")
)

// codeErrors are the errors of the codes a reply may carry. A code not
// here (node_closed, or one a newer server sends) leaves the status alone
// to say what happened.
var codeErrors = map[string]error{
	wire.CodeNotCommitted: ErrNotCommitted,
	wire.CodeUncertain:    ErrUncertain,
	wire.CodeNoLeader:     ErrNoLeader,
	wire.CodeNotLeader:    ErrNotLeader,
	wire.CodeBehind:       ErrBehind,
}

// Error is an error reply from the server.
type Error struct {
	Code      int    // the HTTP-like status: 400, 404, 409, ...
	Message   string // the server's text
	Oldest    int64  // for 410, the oldest revision the server's history holds
	ErrorCode string // a cluster node's code for its refusal ("not_committed", "uncertain", ...), or ""

	kinds []error // what errors.Is matches
}

func (e *Error) Error() string {
	return fmt.Sprintf("livekv: %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Unwrap lets errors.Is match the engine's error, or the client's, that
// the reply stands for.
func (e *Error) Unwrap() []error { return e.kinds }

// engineErrors are those an error reply may name in its text, as the
// adapter passes the engine's message on.
var engineErrors = []error{engine.ErrNotInteger, engine.ErrOverflow, engine.ErrInvalidKey, engine.ErrInvalidOptions,
	engine.ErrTooLarge, engine.ErrConflict, engine.ErrClosed, engine.ErrNotFound}

// replyError makes the error of a reply with a code other than 200.
func replyError(m *message) error {
	e := &Error{Code: m.Code, Message: m.Error, Oldest: m.Oldest, ErrorCode: m.ErrorCode}
	if k, ok := codeErrors[m.ErrorCode]; ok {
		e.kinds = append(e.kinds, k)
	}
	switch m.Code {
	case http.StatusNotFound:
		e.kinds = append(e.kinds, engine.ErrNotFound)
	case http.StatusConflict:
		e.kinds = append(e.kinds, engine.ErrConflict)
	case http.StatusRequestEntityTooLarge:
		e.kinds = append(e.kinds, engine.ErrTooLarge)
	case http.StatusBadRequest:
		e.kinds = append(e.kinds, ErrBadRequest)
		if m.Error == wire.KeyRequired {
			e.kinds = append(e.kinds, engine.ErrInvalidKey) // refused before the engine
		}
	case http.StatusUnauthorized:
		e.kinds = append(e.kinds, ErrUnauthorized)
	case http.StatusForbidden:
		e.kinds = append(e.kinds, ErrForbidden)
	case http.StatusTooManyRequests:
		e.kinds = append(e.kinds, ErrRateLimited)
		if strings.HasPrefix(m.Error, wire.ConnSubscriptionLimit) || strings.HasPrefix(m.Error, wire.TokenSubscriptionLimit) {
			e.kinds = append(e.kinds, ErrSubscriptionLimit)
		}
	case http.StatusServiceUnavailable:
		e.kinds = append(e.kinds, ErrUnavailable)
	case http.StatusInsufficientStorage:
		e.kinds = append(e.kinds, ErrQuotaExceeded)
	case http.StatusGone:
		ce := &engine.CompactedError{Revision: m.Revision, Oldest: m.Oldest}
		if m.Oldest == 0 {
			// Not a history compacted past the revision (which names the
			// oldest it holds): one the server's never reached, a
			// revision of another history. Its text says so.
			return fmt.Errorf("%w: %s", engine.ErrCompacted, m.Error)
		}
		return ce
	}
	for _, k := range engineErrors {
		if strings.Contains(m.Error, k.Error()) && !errors.Is(e, k) {
			e.kinds = append(e.kinds, k)
		}
	}
	return e
}
