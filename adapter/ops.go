package adapter

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// do runs one HPKV operation (or CompareAndSwap) for a client with access
// ac, over WebSocket or REST.
func (a *Adapter) do(ac *access, req *request) reply {
	a.stats.requests.Add(1)
	switch req.Op {
	case wire.OpGet, wire.OpSet, wire.OpPatch, wire.OpDelete, wire.OpRange, wire.OpIncrement, wire.OpCAS:
	default:
		return errorReply(http.StatusBadRequest, "unknown op")
	}
	if req.Key == "" {
		return errorReply(http.StatusBadRequest, wire.KeyRequired)
	}
	// Paths and queries reach here undecoded by JSON: check them too.
	for _, f := range [...]struct{ name, text string }{{"key", req.Key}, {"endKey", req.EndKey}, {"value", req.Value}} {
		if !utf8.ValidString(f.text) {
			return errorReply(http.StatusBadRequest, f.name+" is not valid UTF-8")
		}
	}
	// Only a set and a compare-and-swap take a ttl, but a bad one is
	// refused whatever the op, rather than ignored.
	if req.TTL < 0 || req.TTL > maxTTL {
		return errorReply(http.StatusBadRequest, "ttl: give 0 (never) to 100 years in milliseconds")
	}
	// A range's bounds are not keys it touches: it returns the keys
	// between them that the access pattern admits, whatever the bounds
	// (a prefix's end, "room:1;", is outside "^room:1:" though every key
	// before it is inside).
	if req.Op != wire.OpRange {
		switch ok, undecided := ac.allows(req.Key); {
		case undecided:
			return errorReply(http.StatusServiceUnavailable, errUndecided)
		case !ok:
			return errorReply(http.StatusForbidden, "key outside the token's access pattern")
		}
	}
	db := a.db
	switch req.Op {
	case wire.OpGet:
		r, err := a.reader(req.Consistency, req.MinRevision)
		if err != nil {
			return readError(err)
		}
		it, err := r.Get(req.Key)
		seen := readRevision(r, it.Revision)
		if err != nil {
			rep := readError(err)
			rep.seen = &seen
			return rep
		}
		return reply{Code: http.StatusOK, Key: it.Key, Value: ptr(it.Value), Revision: &it.Revision, seen: &seen}
	case wire.OpSet, wire.OpPatch, wire.OpCAS:
		if !req.HasValue || req.Value == "" {
			return errorReply(http.StatusBadRequest, "value is required")
		}
		if req.Op == wire.OpCAS && req.Revision < 0 {
			return errorReply(http.StatusBadRequest, "negative revision")
		}
		var so *engine.SetOptions
		switch {
		case req.TTL > 0 && req.Op == wire.OpPatch:
			return errorReply(http.StatusBadRequest, "ttl applies to set and compare-and-swap, not patch")
		case req.TTL > 0:
			so = &engine.SetOptions{TTL: time.Duration(req.TTL) * time.Millisecond}
		}
		rev, err := a.write(req.Key, func(tx *engine.Tx) (it engine.Item, err error) {
			switch {
			case req.Op == wire.OpSet && tx == nil:
				return db.Set(req.Key, req.Value, so)
			case req.Op == wire.OpSet:
				return tx.Set(req.Key, req.Value, so)
			case req.Op == wire.OpPatch && tx == nil:
				return db.Patch(req.Key, req.Value)
			case req.Op == wire.OpPatch:
				return tx.Patch(req.Key, req.Value)
			case tx == nil:
				return db.CompareAndSwap(req.Key, req.Revision, req.Value, so)
			default:
				return tx.CompareAndSwap(req.Key, req.Revision, req.Value, so)
			}
		})
		if err != nil {
			return a.refusal(err, rev)
		}
		msg := "Record inserted/updated successfully"
		if req.Op == wire.OpPatch {
			msg = "Record patched successfully"
		}
		return reply{Code: http.StatusOK, Success: ptr(true), Message: msg, Revision: &rev, seen: &rev}
	case wire.OpDelete:
		rev, err := a.write(req.Key, func(tx *engine.Tx) (engine.Item, error) {
			if tx == nil {
				rev, err := db.Delete(req.Key)
				return engine.Item{Revision: rev}, err
			}
			return engine.Item{}, tx.Delete(req.Key)
		})
		if err != nil {
			return a.refusal(err, rev)
		}
		return reply{Code: http.StatusOK, Success: ptr(true), Message: "Record deleted successfully", Revision: &rev, seen: &rev}
	case wire.OpIncrement:
		d, err := req.delta()
		if err != nil {
			return errorReply(http.StatusBadRequest, err.Error())
		}
		var n int64
		rev, err := a.write(req.Key, func(tx *engine.Tx) (engine.Item, error) {
			if tx == nil {
				var rev int64
				n, rev, err = db.Increment(req.Key, d)
				return engine.Item{Revision: rev}, err
			}
			n, err = tx.Increment(req.Key, d)
			return engine.Item{}, err
		})
		if err != nil {
			return a.refusal(err, rev)
		}
		return reply{Code: http.StatusOK, Success: ptr(true), Key: req.Key, NewValue: ptr(n), Revision: &rev, seen: &rev}
	default: // OpRange
		r, err := a.reader(req.Consistency, req.MinRevision)
		if err != nil {
			return readError(err)
		}
		return a.rangeReply(ac, r, req.Key, req.EndKey, req.Limit)
	}
}

// maxTTL is the longest ttl a request may give, in milliseconds: 100 years.
const maxTTL = 100 * 365 * 24 * 3600 * 1000

// write runs op, one write to key, and returns the revision it committed
// at. Without a Quota, op gets a nil transaction and uses the DB's own
// single-write methods, returning an item with that revision. With one, op
// runs in a transaction that measures key before and after it and asks the
// Quota, which sees the writes one at a time: two writers cannot both fit
// in the room left for one.
func (a *Adapter) write(key string, op func(tx *engine.Tx) (engine.Item, error)) (int64, error) {
	if a.opts.Quota == nil {
		it, err := op(nil)
		return it.Revision, err
	}
	return a.db.Update(func(tx *engine.Tx) error {
		_, err := a.charged(tx, key, func() error {
			_, err := op(tx)
			return err
		})
		return err
	})
}

// charged runs op, a write to key in tx, and asks the Quota about the
// change it makes to what key holds, which it returns once the Quota has
// counted it.
func (a *Adapter) charged(tx *engine.Tx, key string, op func() error) (QuotaUsage, error) {
	before, err := sizeIn(tx, key)
	if err != nil {
		return QuotaUsage{}, err
	}
	if err := op(); err != nil {
		return QuotaUsage{}, err
	}
	after, err := sizeIn(tx, key)
	if err != nil {
		return QuotaUsage{}, err
	}
	d := QuotaUsage{Keys: after.Keys - before.Keys, Bytes: after.Bytes - before.Bytes}
	err = a.opts.Quota.Charge(key, d.Bytes, d.Keys)
	if rc, ok := a.opts.Quota.(recounter); ok && errors.Is(err, ErrQuotaExceeded) {
		// The counts only drift up (keys gone by expiry): counted again,
		// they may leave room.
		if again, rerr := rc.recount(tx, key, d); rerr != nil {
			return QuotaUsage{}, rerr
		} else if again {
			err = a.opts.Quota.Charge(key, d.Bytes, d.Keys)
		}
	}
	if err != nil {
		return QuotaUsage{}, err
	}
	return d, nil
}

// sizeIn is what key holds in tx: one key of len(key)+len(value) bytes,
// or nothing.
func sizeIn(tx *engine.Tx, key string) (QuotaUsage, error) {
	it, err := tx.Get(key)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return QuotaUsage{}, nil
	case err != nil:
		return QuotaUsage{}, err
	}
	return QuotaUsage{Keys: 1, Bytes: int64(len(it.Key) + len(it.Value))}, nil
}

// rangeReply reads the keys from start to end, both included (end ""
// means no bound), at most limit of them (0: the default), whose keys and
// values hold at most MaxReplyBytes and whose encoding fits in
// MaxQueuedBytes; the first record is always returned, so that every value
// can be read.
func (a *Adapter) rangeReply(ac *access, r reads, start, end string, limit int) reply {
	if limit == 0 {
		limit = a.opts.DefaultRangeLimit
	}
	if limit > a.opts.MaxRangeLimit {
		limit = a.opts.MaxRangeLimit
	}
	if end != "" && end < start {
		return errorReply(http.StatusBadRequest, "endKey before key")
	}
	stop := ""
	if end != "" {
		stop = engine.KeyAfter(end)
	}
	start, stop = ac.narrow(start, stop)
	records := []record{}
	truncated := false
	var rev int64
	size, bound := 0, 0 // bytes of keys and values; their encoded length, at most
	err := r.View(func(tx *engine.Tx) error {
		rev = tx.Revision()
		items, err := tx.Range(start, stop, nil)
		if err != nil {
			return err
		}
		for it, err := range items {
			if err != nil {
				return err
			}
			switch ok, undecided := ac.allows(it.Key); {
			case undecided:
				return errAccessUndecided
			case !ok:
				continue
			}
			n, nb := len(it.Key)+len(it.Value), recordBound(it.Key, it.Value)
			if len(records) == limit || len(records) > 0 &&
				(size+n > a.opts.MaxReplyBytes || int64(messageOverhead+bound+nb) > a.opts.MaxQueuedBytes) {
				truncated = true
				break
			}
			size, bound = size+n, bound+nb
			records = append(records, record{Key: it.Key, Value: it.Value, Revision: it.Revision})
		}
		return nil
	})
	if errors.Is(err, errAccessUndecided) {
		return errorReply(http.StatusServiceUnavailable, errUndecided)
	}
	if err != nil {
		return engineError(err)
	}
	// revision (livekv's) is the one the range was read at, the whole
	// store's: a client that then applies only the notifications of the
	// range's keys after it misses nothing. Notifications at or below it
	// may still follow the reply (conn.go: forward and the request's
	// goroutine each send), and other keys' are news whatever their
	// revision.
	return reply{Code: http.StatusOK, Records: &records, Count: ptr(len(records)), Truncated: ptr(truncated), Revision: &rev, recordsBound: bound, seen: &rev}
}

// refusal is the reply to a write that failed with err, rev the revision
// the store gave with it. A write refused on the state it found (a
// missing key, a revision that does not match, a value that is not an
// integer) reflects that state: at least rev (a cluster node gives the
// leader's, where the write was decided) and this node's own revision.
// The reply says so (seen), so that the connection's session, or a REST
// client's minRevision, reads nothing older after it.
func (a *Adapter) refusal(err error, rev int64) reply {
	rep := engineError(err)
	if wire.Refused(err) {
		rep.seen = ptr(readRevision(a.db, rev))
	}
	return rep
}

// readError maps the error of a read at a level to a reply: the store's
// refusal of the level (a cluster node that does not lead, or is behind
// minRevision) is 503, and the client may try elsewhere or again.
func readError(err error) reply {
	rep := engineError(err)
	var rle *readLevelError
	if errors.As(err, &rle) && rep.ErrorCode == "" && !errors.Is(err, engine.ErrClosed) {
		return errorReply(http.StatusServiceUnavailable, err.Error())
	}
	return rep
}

// codedError is an error that names itself with one of internal/wire's
// error codes, as a cluster node's errors do (cluster.ErrNotCommitted,
// cluster.ErrUncertain, ...). The adapter serves a Store, an interface, and
// does not import package cluster (and raft with it) for an embedder of
// one node: it finds a cluster error by this method instead of by its
// sentinel, and the code is what the client gets.
type codedError interface {
	error
	ErrorCode() string
}

// errorCode is the code of the first codedError in err's chain and its
// status, 0 for a code the adapter does not know; "" and 0 if none.
func errorCode(err error) (string, int) {
	var ce codedError
	if !errors.As(err, &ce) {
		return "", 0
	}
	code := ce.ErrorCode()
	return code, codeStatus(code)
}

// codeStatus is the status of a reply with an error code: 503 when
// nothing was done and the request may be sent again (here later, or to
// another node), 504 when a write may or may not have happened; 0 for a
// code the adapter does not know.
func codeStatus(code string) int {
	switch code {
	case wire.CodeNotCommitted, wire.CodeNoLeader, wire.CodeNotLeader, wire.CodeBehind, wire.CodeNodeClosed:
		return http.StatusServiceUnavailable
	case wire.CodeUncertain:
		return http.StatusGatewayTimeout
	}
	return 0
}

// engineError maps an error of the Store, the engine's or a cluster
// node's, to a reply.
func engineError(err error) reply {
	if code, status := errorCode(err); status != 0 {
		return reply{Code: status, Error: err.Error(), ErrorCode: code}
	}
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, engine.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, engine.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, engine.ErrInvalidKey), errors.Is(err, engine.ErrNotInteger), errors.Is(err, engine.ErrOverflow),
		errors.Is(err, engine.ErrInvalidOptions):
		code = http.StatusBadRequest
	case errors.Is(err, engine.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, engine.ErrClosed):
		code = http.StatusServiceUnavailable
	case errors.Is(err, ErrQuotaExceeded):
		code = http.StatusInsufficientStorage
	}
	msg := err.Error()
	if code == http.StatusNotFound {
		msg = "Record not found"
	}
	return errorReply(code, msg)
}

func errorReply(code int, msg string) reply { return reply{Code: code, Error: msg} }

// Stats count an adapter's work.
type Stats struct {
	Connections int   // WebSocket connections open
	Requests    int64 // operations run, over WebSocket and REST
	Throttled   int64 // requests answered 429, over WebSocket and REST
	BytesOut    int64 // bytes of WebSocket messages and REST responses written
	SlowClosed  int64 // connections closed because the client stopped reading
	DeadPeers   int64 // connections closed because a ping went unanswered

	// PeakQueuedBytes is the most bytes of replies and notifications ever
	// held for one connection at once (see Options.MaxQueuedBytes).
	PeakQueuedBytes int64
}

type counters struct {
	requests, slowClosed, deadPeers atomic.Int64
	throttled, bytesOut             atomic.Int64
	peakQueued                      atomic.Int64
}

// notePeak records the bytes held for a connection if they are the most
// yet.
func (c *counters) notePeak(n int64) {
	for {
		p := c.peakQueued.Load()
		if n <= p || c.peakQueued.CompareAndSwap(p, n) {
			return
		}
	}
}

// Stats returns the adapter's counters.
func (a *Adapter) Stats() Stats {
	a.mu.Lock()
	n := len(a.conns)
	a.mu.Unlock()
	return Stats{Connections: n, Requests: a.stats.requests.Load(), Throttled: a.stats.throttled.Load(), BytesOut: a.stats.bytesOut.Load(), SlowClosed: a.stats.slowClosed.Load(), DeadPeers: a.stats.deadPeers.Load(),
		PeakQueuedBytes: a.stats.peakQueued.Load()}
}
