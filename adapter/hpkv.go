package adapter

import (
	"net/http"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/livekv/livekv/pubsub"
)

// hpkvDialect is HPKV's WebSocket protocol, at /ws: requests by op
// number, replies with a code and the request's messageId.
type hpkvDialect struct{}

func (hpkvDialect) decode(b []byte) (any, any) {
	req, err := decodeRequest(b)
	if err != nil {
		// Only the messageId, which a 429 carries too: the op of a
		// message that did not decode is counted as none (observed).
		return &request{MessageID: req.MessageID}, reply{Code: http.StatusBadRequest, MessageID: req.MessageID, Error: err.Error()}
	}
	return &req, nil
}

// inOrder is false: HPKV's client pairs replies with requests by
// messageId and assumes no order, so a connection's requests run
// concurrently.
func (hpkvDialect) inOrder() bool { return false }

func (hpkvDialect) refuse(req any, code int, msg string) any {
	rep := errorReply(code, msg)
	if r, ok := req.(*request); ok {
		rep.MessageID = r.MessageID
	}
	return rep
}

func (hpkvDialect) run(c *conn, r any) any {
	req := r.(*request)
	var rep reply
	switch req.Op {
	case wire.OpSubscribe:
		pats, werr := c.parsePatterns(req.Patterns)
		if werr == nil {
			var id, rev int64
			if id, rev, werr = c.subscribe(pats, startAfter(req.FromRevision, req.FromGiven), true); werr == nil {
				rep = reply{Code: http.StatusOK, Success: ptr(true), SubscriptionID: id, Revision: &rev}
			}
		}
		if werr != nil {
			rep = wireReply(0, werr)
		}
	case wire.OpUnsubscribe:
		if !c.unsubscribe(req.SubscriptionID) {
			rep = errorReply(http.StatusNotFound, "no such subscription")
		} else {
			rep = reply{Code: http.StatusOK, Success: ptr(true), SubscriptionID: req.SubscriptionID}
		}
	default:
		req.Consistency, req.MinRevision = c.readLevel(req.Consistency, req.MinRevision)
		rep = c.a.do(c.ac, req)
		if rep.seen != nil {
			c.noteSeen(*rep.seen)
			if *rep.seen > rep.revision() {
				rep.AtRevision = *rep.seen
			}
		}
	}
	rep.MessageID = req.MessageID
	return rep
}

func (hpkvDialect) notification(sub int64, tagged bool, ev *engine.Event) any {
	n := notification{Type: "notification", Key: ev.Key, Timestamp: ev.Time.UnixMilli(), Revision: ev.Revision}
	if tagged {
		n.SubscriptionID = sub
	}
	if ev.Type != pubsub.Delete && ev.Type != pubsub.Expire {
		n.Value = ptr(ev.Value)
	}
	return n
}

func (hpkvDialect) failure(sub int64, err *wireError) any { return wireReply(sub, err) }

func (hpkvDialect) start(*conn) {}

// wireReply is the HPKV reply of a wireError, of subscription sub if not 0.
func wireReply(sub int64, err *wireError) reply {
	return reply{Code: err.code, Error: err.msg, ErrorCode: err.errorCode, SubscriptionID: sub, Oldest: err.oldest, Revision: err.revision}
}
