package adapter

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
)

// maxClientID bounds the client_id a DBX connection may give, which goes
// into logs.
const maxClientID = 256

// serveDBX authenticates, upgrades and runs one connection of the DBX
// dialect (at dbx/ws) until it ends. api_key is an API key, or a token in
// its place, whose scope then applies as on /ws.
func (a *Adapter) serveDBX(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if v := q.Get("version"); v != "" && v != dbxVersion && v != "1" {
		writeDBXHTTPError(w, http.StatusBadRequest, dbxErrorf(dbxUnsupported, "version %.32q is not supported; this server speaks version %s", v, dbxVersion))
		return
	}
	clientID := q.Get("client_id")
	if len(clientID) > maxClientID || !utf8.ValidString(clientID) {
		writeDBXHTTPError(w, http.StatusBadRequest, dbxErrorf(dbxInvalidRequest, "client_id: at most %d bytes of UTF-8", maxClientID))
		return
	}
	apiKey, token := handshakeKey(r, q.Get("api_key")), ""
	if strings.Contains(apiKey, ".") && !a.validAPIKey(apiKey) { // a token: base64url "." base64url
		apiKey, token = "", apiKey
	}
	ac, code, err := a.credentials(apiKey, token)
	if err != nil {
		if code == http.StatusUnauthorized && !errors.Is(err, errTokenExpired) {
			err = errors.New("api_key (an API key or a token) required")
		}
		writeDBXHTTPError(w, code, dbxErrorf(dbxCode(code, err), "%v", err))
		return
	}
	from, err := fromRevision(q)
	if err != nil {
		writeDBXHTTPError(w, http.StatusBadRequest, dbxErrorf(dbxInvalidRequest, "%v", err))
		return
	}
	level, minRev, err := readParams(q)
	if err != nil {
		writeDBXHTTPError(w, http.StatusBadRequest, dbxErrorf(dbxInvalidRequest, "%v", err))
		return
	}
	a.serveConn(w, r, ac, dial{from: from, level: level, minRev: minRev}, dbxDialect{maxItems: a.opts.MaxRangeLimit}, clientID)
}

// writeDBXHTTPError refuses a handshake the way DBX's REST API answers
// errors: {"error": code, "message", "status"}.
func writeDBXHTTPError(w http.ResponseWriter, status int, e *dbxError) {
	writeJSON(w, status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Status  int    `json:"status"`
	}{e.Code, e.Message, status})
}

// dbxCode is the DBX error code of an error that has an HPKV code. A
// cluster node's refusal keeps its own code (errorCode), as in HPKV.
func dbxCode(code int, err error) string {
	if c, s := errorCode(err); s != 0 {
		return c
	}
	switch code {
	case http.StatusBadRequest:
		switch {
		case errors.Is(err, engine.ErrNotInteger):
			return dbxTypeMismatch
		case errors.Is(err, engine.ErrInvalidKey):
			return dbxInvalidKey
		case errors.Is(err, engine.ErrOverflow):
			return dbxInvalidValue
		case errors.Is(err, engine.ErrInvalidOptions):
			return dbxInvalidTTL
		}
		return dbxInvalidRequest
	case http.StatusUnauthorized:
		return dbxUnauthorized
	case http.StatusForbidden:
		return dbxForbidden
	case http.StatusNotFound:
		return dbxNotFound
	case http.StatusGone:
		return dbxCompacted
	case http.StatusRequestEntityTooLarge:
		// The engine's limits: "engine: too large: key of N bytes" or
		// "engine: too large: value of K is N bytes", as a cluster node
		// passes them on too. Only the start tells: K, quoted, may hold
		// anything.
		if err != nil && strings.HasPrefix(err.Error(), engine.ErrTooLarge.Error()+": key of ") {
			return dbxInvalidKey
		}
		return dbxInvalidValue
	case http.StatusTooManyRequests:
		return dbxRateLimited
	case http.StatusServiceUnavailable:
		return dbxUnavailable
	case http.StatusInsufficientStorage:
		return dbxQuotaExceeded
	}
	return dbxServerError
}

// toDBXError is the DBX error of an error from running a request.
func toDBXError(err error) *dbxError {
	var de *dbxError
	if errors.As(err, &de) {
		return de
	}
	rep := readError(err)
	return &dbxError{Code: dbxCode(rep.Code, err), Message: rep.Error}
}

// dbxDialect is DBX's documented WebSocket protocol, at dbx/ws.
type dbxDialect struct {
	maxItems int // operations of a batch, keys of mget and mset: MaxRangeLimit
}

func (d dbxDialect) decode(b []byte) (any, any) {
	req, derr := decodeDBX(b, d.maxItems)
	if derr != nil {
		// The request keeps its id, which a 429 carries too; a known
		// method with bad params is counted under it, and one without a
		// known method as invalid (observed).
		return &req, dbxMessage{ID: req.ID, Error: derr, Timestamp: dbxTime(time.Now())}
	}
	return &req, nil
}

// inOrder is true: a DBX (Redis) user expects a connection's requests to
// take effect in the order sent, as pipelined commands do.
func (dbxDialect) inOrder() bool { return true }

func (dbxDialect) refuse(req any, code int, msg string) any {
	r, _ := req.(*dbxRequest)
	if r != nil && r.Heartbeat {
		return nil // a heartbeat over the rate goes unanswered, as a ping does
	}
	m := dbxMessage{Error: &dbxError{Code: dbxCode(code, nil), Message: msg}, Timestamp: dbxTime(time.Now())}
	if code == http.StatusBadRequest {
		m.Error.Code = dbxInvalidRequest
	}
	if r != nil {
		m.ID = r.ID
	}
	return m
}

func (dbxDialect) run(c *conn, r any) any {
	req := r.(*dbxRequest)
	if req.Heartbeat {
		return nil // the reader noted that the client is alive
	}
	c.a.stats.requests.Add(1)
	var result any
	var derr *dbxError
	p := &req.Params
	switch req.Method {
	case "subscribe":
		result, derr = c.dbxSubscribe(p)
	case "unsubscribe":
		if !c.unsubscribe(p.SubscriptionID) {
			derr = dbxErrorf(dbxNotFound, "no subscription %d", p.SubscriptionID)
		} else {
			result = map[string]any{"success": true, "subscriptionId": p.SubscriptionID}
		}
	case "batch":
		var results []any
		if results, derr = c.dbxRun(p.Operations, true); derr == nil {
			result = map[string]any{"results": results}
		}
	default:
		var results []any
		if results, derr = c.dbxRun([]dbxOp{{Method: req.Method, Params: *p}}, false); derr == nil {
			result = results[0]
		}
	}
	return dbxMessage{ID: req.ID, Result: result, Error: derr, Timestamp: dbxTime(time.Now())}
}

func (c *conn) dbxSubscribe(p *dbxParams) (any, *dbxError) {
	pats, werr := c.parsePatterns(p.Patterns)
	var id, rev int64
	if werr == nil {
		id, rev, werr = c.subscribe(pats, startAfter(p.FromRevision, p.FromGiven), true)
	}
	if werr != nil {
		return nil, dbxWireError(0, werr)
	}
	return map[string]any{"success": true, "subscriptionId": id, "revision": rev}, nil
}

// dbxWireError is the DBX error of a wireError, about subscription sub if
// not 0.
func dbxWireError(sub int64, e *wireError) *dbxError {
	return &dbxError{Code: dbxCode(e.code, e.err), Message: e.msg, SubscriptionID: sub, Oldest: e.oldest, Revision: e.revision}
}

func (dbxDialect) notification(sub int64, tagged bool, ev *engine.Event) any {
	n := dbxMessage{Type: "notification", Key: ptr(ev.Key), Revision: ev.Revision, Timestamp: dbxTime(ev.Time)}
	if tagged {
		n.SubscriptionID = sub
	}
	if ev.Type == pubsub.Delete || ev.Type == pubsub.Expire {
		n.Deleted = true
	} else {
		n.Value = ptr(ev.Value)
	}
	return n
}

func (dbxDialect) failure(sub int64, err *wireError) any {
	return dbxMessage{Type: "error", Error: dbxWireError(sub, err), Timestamp: dbxTime(time.Now())}
}

func (dbxDialect) start(c *conn) {
	c.tasks.Add(1)
	go c.heartbeatLoop()
}

// heartbeatLoop sends a heartbeat every HeartbeatInterval and closes the
// connection (1008) once the client has sent nothing, heartbeats included
// (and a part of a message is something: read), for HeartbeatInterval +
// HeartbeatTimeout: it missed its heartbeat and
// the grace after it. The time the reader waits for a request slot, its
// requests filling MaxInFlight, does not count: the server reads nothing
// then.
func (c *conn) heartbeatLoop() {
	defer c.tasks.Done()
	every, grace := c.a.opts.HeartbeatInterval, c.a.opts.HeartbeatTimeout
	next := time.Now().Add(every)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		silentUntil := time.Unix(0, c.lastRead.Load()).Add(every + grace)
		if c.waiting.Load() { // the server is not reading: not the client's silence
			silentUntil = now.Add(every + grace)
		}
		if !now.Before(silentUntil) {
			c.failCounting(&c.a.stats.deadPeers, websocket.StatusPolicyViolation, "no heartbeat from the client")
			return
		}
		if !now.Before(next) {
			if !c.send(dbxMessage{Type: "heartbeat", Timestamp: dbxTime(now)}) {
				return
			}
			next = now.Add(every)
		}
		t.Reset(min(next.Sub(now), silentUntil.Sub(now)))
	}
}

// dbxRun runs operations in one transaction: a write transaction, which
// commits as one revision, if any of them writes; else a read snapshot.
// If one fails, none has any effect, and the error says which (batch
// true: by its index). Write results carry the revision.
func (c *conn) dbxRun(ops []dbxOp, batch bool) ([]any, *dbxError) {
	level, minRev := c.readLevel("", 0)
	results, seen, derr := c.a.dbxRun(c.ac, level, minRev, ops, batch)
	c.noteSeen(seen)
	return results, derr
}

// dbxRun runs operations for a connection with access ac: a read reads at
// level after minRev. It returns the results and the revision they
// reflect (see reply.seen).
func (a *Adapter) dbxRun(ac *access, level string, minRev int64, ops []dbxOp, batch bool) ([]any, int64, *dbxError) {
	failed := -1
	fail := func(err error) *dbxError {
		de := toDBXError(err)
		switch {
		case batch && failed >= 0:
			de = &dbxError{Code: de.Code, Operation: ptr(failed), Oldest: de.Oldest, Revision: de.Revision,
				Message: fmt.Sprintf("operations[%d] (%s): %s; the batch changed nothing", failed, ops[failed].Method, de.Message)}
		case batch: // no operation failed: reading or committing did
			de = &dbxError{Code: de.Code, Oldest: de.Oldest, Revision: de.Revision,
				Message: fmt.Sprintf("batch: %s; the batch changed nothing", de.Message)}
		}
		return de
	}
	write := false
	scans := 0 // keys.scan and keys.count
	for i, op := range ops {
		failed = i
		if err := a.dbxCheck(ac, &op); err != nil {
			return nil, 0, fail(err)
		}
		write = write || dbxMethods[op.Method].write
		if op.Method == "keys.scan" || op.Method == "keys.count" {
			scans++
		}
		if scans > 1 && !ac.full && ac.pattern != nil {
			// The keys it may not read have a MaxExaminedKeys of their
			// own in a request (examineForeign): scans of a range of
			// them again and again would spend it down to any amount,
			// and where the last ran out would count them in another.
			return nil, 0, fail(dbxErrorf(dbxInvalidRequest, "a token's request holds one keys.scan or keys.count at most: send the others apart"))
		}
	}
	failed = -1
	st := &dbxTx{a: a, ac: ac, writing: write}
	results := make([]any, len(ops))
	var changed []bool // which operations wrote; reads need not know
	if write {
		changed = make([]bool, len(ops))
	}
	fn := func(tx *engine.Tx) error {
		st.tx = tx
		for i := range ops {
			st.changed = false
			res, err := st.exec(&ops[i])
			if changed != nil {
				changed[i] = st.changed
			}
			if err != nil {
				failed = i
				st.refund() // in the transaction, so the Quota sees one write at a time
				return err
			}
			results[i] = res
		}
		return nil
	}
	if !write {
		r, err := a.reader(level, minRev)
		if err != nil {
			return nil, 0, fail(err)
		}
		var seen int64
		if err := r.View(func(tx *engine.Tx) error {
			seen = tx.Revision()
			return fn(tx)
		}); err != nil {
			return nil, 0, fail(err)
		}
		return results, seen, nil
	}
	var rev int64
	var err error
	if !batch && a.direct(&ops[0]) {
		err = fn(nil)
		rev = st.rev
	} else {
		rev, err = a.db.Update(fn)
	}
	if err != nil {
		// A refusal reflects the state it found: at least the store's
		// revision now (a cluster's leader's, when it refused there),
		// which the connection's session takes, as for a write.
		var seen int64
		if wire.Refused(err) {
			seen = readRevision(a.db, st.rev)
		}
		return nil, seen, fail(err)
	}
	for i, op := range ops {
		if m, ok := results[i].(map[string]any); ok && changed[i] && dbxMethods[op.Method].write && rev != 0 { // 0: nothing written
			m["revision"] = rev
		}
	}
	seen := rev
	if rev == 0 { // nothing written: the state it read
		seen = readRevision(a.db, st.rev)
	}
	return results, seen, nil
}

// dbxCheck checks the keys an operation names against the connection's
// access, before anything runs.
func (a *Adapter) dbxCheck(ac *access, op *dbxOp) error {
	p := &op.Params
	check := func(k string) error {
		switch ok, undecided := ac.allows(k); {
		case undecided:
			return dbxErrorf(dbxUnavailable, "%s", errUndecided)
		case !ok:
			return dbxErrorf(dbxForbidden, "key %.64q is outside the token's access pattern", k)
		}
		return nil
	}
	if p.Key != "" {
		if err := check(p.Key); err != nil {
			return err
		}
	}
	for _, k := range p.Keys {
		if err := check(k); err != nil {
			return err
		}
	}
	for _, r := range p.Pairs {
		if err := check(r.Key); err != nil {
			return err
		}
	}
	return nil
}

// dbxTx runs the operations of one request in its transaction.
type dbxTx struct {
	a            *Adapter
	ac           *access
	tx           *engine.Tx
	charges      []quotaCharge // what the Quota counted, to give back if the transaction rolls back
	size         int           // their bytes
	bound        int           // their encoding's length, at most
	examined     int           // keys read, and examined by scans and counts: at most MaxExaminedKeys
	foreign      int           // keys examined that the connection may not read: at most MaxExaminedKeys more
	changed      bool          // the operation running wrote
	scanDeadline time.Time     // when its scans and counts have spent ScanTimeBudget
	writes       int           // writes run
	written      int           // what they put in the log, at most; once there are two, up to MaxWriteBytes
	rev          int64         // without a transaction (tx nil): the revision the write committed at
	writing      bool          // the request writes: its transaction holds the engine's writer lock
}

type quotaCharge struct {
	key string
	QuotaUsage
}

// write runs op, a write to key, and has the Quota count it; the
// operation then changed something, unless it says otherwise.
func (st *dbxTx) write(key string, op func() error) error {
	if st.a.opts.Quota == nil {
		err := op()
		st.changed = st.changed || err == nil
		return err
	}
	d, err := st.a.charged(st.tx, key, op)
	st.changed = st.changed || err == nil
	if err == nil && d != (QuotaUsage{}) {
		st.charges = append(st.charges, quotaCharge{key, d})
	}
	return err
}

// writeFraming is what the log adds to a write's key and value, at most.
const writeFraming = 32

// wrote counts a write to key of a value of n bytes, before it goes into
// the transaction and its log record: the writes of one request must fit
// in MaxWriteBytes (one alone always does).
func (st *dbxTx) wrote(key string, n int) error {
	st.writes++
	st.written += len(key) + n + writeFraming
	if st.writes > 1 && st.written > st.a.opts.MaxWriteBytes {
		return dbxErrorf(dbxWorkExceeded, "the writes of one request put at most %d bytes (MaxWriteBytes) in the log, and these would put more: write less at once", st.a.opts.MaxWriteBytes)
	}
	return nil
}

// refund gives back to the Quota what it counted for the transaction's
// writes, which are about to roll back, last first, so that each brings
// the count back to one it held before. A delete's give-back counts its
// key again, which a Quota's Charge may take for a new key past its
// limit: a PrefixQuota takes it back unchecked (giveBack), and any other
// must accept it (see Quota).
func (st *dbxTx) refund() {
	q := st.a.opts.Quota
	for i := len(st.charges) - 1; i >= 0; i-- {
		c := st.charges[i]
		if g, ok := q.(giver); ok {
			g.giveBack(c.key, c.Bytes, c.Keys)
		} else {
			q.Charge(c.key, -c.Bytes, -c.Keys)
		}
	}
	st.charges = nil
}

// read counts a value going into the reply: all of them must fit in
// MaxReplyBytes and the byte budget (one alone always does).
func (st *dbxTx) read(v string) error {
	first := st.bound == 0 // nothing read or scanned before: it always runs
	st.size += len(v)
	st.bound += jsonStringBound(v) + 1
	if !first && (st.size > st.a.opts.MaxReplyBytes || int64(messageOverhead+st.bound) > st.a.opts.MaxQueuedBytes) {
		return dbxErrorf(dbxInvalidRequest, "the values asked for hold over %d bytes (MaxReplyBytes) or would not fit in the connection's byte budget: ask for fewer at once", st.a.opts.MaxReplyBytes)
	}
	return nil
}

// ttlOf is a key's time to live in whole seconds, rounded up, by the
// DB's clock (which may not be the wall clock); -1 without expiry.
func (st *dbxTx) ttlOf(it engine.Item) int64 {
	if it.ExpiresAt.IsZero() {
		return -1
	}
	return max(0, int64(math.Ceil(it.ExpiresAt.Sub(st.tx.Now()).Seconds())))
}

// setOpts is a write's SetOptions for a TTL in seconds (0: none).
func setOpts(ttl int64) *engine.SetOptions {
	if ttl == 0 {
		return nil
	}
	return &engine.SetOptions{TTL: time.Duration(ttl) * time.Second}
}

// keepTTL is the SetOptions that keep an item's expiry as it is: a TTL
// counts from the transaction's time.
func (st *dbxTx) keepTTL(it engine.Item) *engine.SetOptions {
	if it.ExpiresAt.IsZero() {
		return nil
	}
	return &engine.SetOptions{TTL: max(it.ExpiresAt.Sub(st.tx.Now()), time.Nanosecond)}
}

// examine counts a key read or examined for what: one request may read
// and examine at most MaxExaminedKeys keys.
func (st *dbxTx) examine(what string) error {
	return st.tally(&st.examined, what)
}

// examineForeign counts a key examined for what that the connection may
// not read. Such keys count apart, up to MaxExaminedKeys of their own:
// the client can spend the request's other keys (reading keys it may
// read) down to any number before a scan, and where the scan then ran
// out would count the keys it may not read in its range.
func (st *dbxTx) examineForeign(what string) error {
	return st.tally(&st.foreign, what)
}

// tally counts one more key in n, unless it holds MaxExaminedKeys.
func (st *dbxTx) tally(n *int, what string) error {
	if *n == st.a.opts.MaxExaminedKeys {
		return dbxErrorf(dbxWorkExceeded, "%.80s: a request reads and examines at most %d keys (MaxExaminedKeys), and this one would go past it: narrow the pattern, page with keys.scan, or read fewer keys at once", what, st.a.opts.MaxExaminedKeys)
	}
	*n++
	return nil
}

// get reads key: found false when it does not exist.
func (st *dbxTx) get(key string) (it engine.Item, found bool, err error) {
	if err := st.examine("reading"); err != nil {
		return it, false, err
	}
	it, err = st.tx.Get(key)
	if errors.Is(err, engine.ErrNotFound) {
		return it, false, nil
	}
	return it, err == nil, err
}

func notFound(key string) error { return dbxErrorf(dbxNotFound, "Key '%s' not found", key) }

// dbxDelta is what an increment or decrement adds.
func dbxDelta(op *dbxOp) (int64, error) {
	d := op.Params.Amount
	switch op.Method {
	case "string.incr":
		d = 1
	case "string.decr":
		d = -1
	case "string.decrby":
		if d == math.MinInt64 {
			return 0, dbxErrorf(dbxInvalidValue, "amount %d cannot be negated", d)
		}
		d = -d
	}
	return d, nil
}

// putIfAbsenter is a Store that also has *engine.DB's PutIfAbsent, as a
// cluster node's handle does.
type putIfAbsenter interface {
	PutIfAbsent(key, value string, o *engine.SetOptions) (engine.Item, error)
}

// direct reports whether op, a request's one operation, runs without a
// transaction (exec with a nil tx), with the Store's method for it, as
// Adapter.write runs a write without a Quota: set, setnx (when the Store
// has PutIfAbsent), delete and the increments. A cluster node forwards
// these from a follower to the leader, while it refuses Update (it cannot
// ship a closure) off the leader. Writes that read first (append,
// expire), several keys and a Quota's measures need the transaction.
func (a *Adapter) direct(op *dbxOp) bool {
	return a.opts.Quota == nil && dbxMethods[op.Method].single && (op.Method != "string.setnx" || a.pia != nil)
}

// set, putIfAbsent, del and increment are the writes exec runs without a
// transaction (see direct) when st.tx is nil, with the Store's methods;
// st.rev is then the revision they committed at.
func (st *dbxTx) set(key, value string, o *engine.SetOptions) error {
	if st.tx != nil {
		_, err := st.tx.Set(key, value, o)
		return err
	}
	it, err := st.a.db.Set(key, value, o)
	st.rev = it.Revision
	return err
}

func (st *dbxTx) putIfAbsent(key, value string, o *engine.SetOptions) error {
	if st.tx != nil {
		_, err := st.tx.PutIfAbsent(key, value, o)
		return err
	}
	it, err := st.a.pia.PutIfAbsent(key, value, o)
	st.rev = it.Revision
	return err
}

func (st *dbxTx) del(key string) error {
	if st.tx != nil {
		return st.tx.Delete(key)
	}
	var err error
	st.rev, err = st.a.db.Delete(key)
	return err
}

func (st *dbxTx) increment(key string, d int64) (n int64, err error) {
	if st.tx != nil {
		return st.tx.Increment(key, d)
	}
	n, st.rev, err = st.a.db.Increment(key, d)
	return n, err
}

// exec runs one operation, in st.tx; a single write (see direct) may run
// without one, tx nil.
func (st *dbxTx) exec(op *dbxOp) (any, error) {
	tx, p := st.tx, &op.Params
	switch op.Method {
	case "ping":
		if p.Message != nil { // DBX's docs: the message comes back as pong
			if err := st.read(*p.Message); err != nil {
				return nil, err
			}
			return map[string]any{"pong": *p.Message}, nil
		}
		return map[string]any{"pong": true}, nil
	case "string.get":
		it, found, err := st.get(p.Key)
		switch {
		case err != nil:
			return nil, err
		case !found:
			return nil, notFound(p.Key)
		}
		if err := st.read(it.Value); err != nil {
			return nil, err
		}
		return map[string]any{"value": it.Value, "ttl": st.ttlOf(it)}, nil
	case "string.exists":
		_, found, err := st.get(p.Key)
		return map[string]any{"exists": found}, err
	case "string.strlen":
		it, _, err := st.get(p.Key)
		return map[string]any{"length": len(it.Value)}, err
	case "string.ttl":
		it, found, err := st.get(p.Key)
		ttl := st.ttlOf(it)
		if !found {
			ttl = -2
		}
		return map[string]any{"ttl": ttl}, err
	case "string.mget":
		values := make([]any, len(p.Keys))
		for i, k := range p.Keys {
			it, found, err := st.get(k)
			if err != nil {
				return nil, err
			}
			if found {
				if err := st.read(it.Value); err != nil {
					return nil, err
				}
				values[i] = it.Value
			}
		}
		return map[string]any{"values": values}, nil
	case "string.set":
		if err := st.wrote(p.Key, len(p.Value)); err != nil {
			return nil, err
		}
		err := st.write(p.Key, func() error { return st.set(p.Key, p.Value, setOpts(p.TTL)) })
		return map[string]any{"success": true, "key": p.Key}, err
	case "string.setnx":
		created := true
		if err := st.wrote(p.Key, len(p.Value)); err != nil {
			return nil, err
		}
		err := st.write(p.Key, func() error {
			err := st.putIfAbsent(p.Key, p.Value, setOpts(p.TTL))
			if errors.Is(err, engine.ErrConflict) {
				created, err = false, nil
			}
			return err
		})
		st.changed = st.changed && created
		return map[string]any{"success": true, "created": created}, err
	case "string.delete":
		deleted := true
		if err := st.wrote(p.Key, 0); err != nil {
			return nil, err
		}
		err := st.write(p.Key, func() error {
			err := st.del(p.Key)
			if errors.Is(err, engine.ErrNotFound) {
				deleted, err = false, nil
			}
			return err
		})
		st.changed = st.changed && deleted
		return map[string]any{"success": true, "deleted": deleted}, err
	case "string.incr", "string.incrby", "string.decr", "string.decrby":
		d, err := dbxDelta(op)
		if err != nil {
			return nil, err
		}
		var n int64
		if err := st.wrote(p.Key, len("-9223372036854775808")); err != nil {
			return nil, err
		}
		err = st.write(p.Key, func() (err error) { n, err = st.increment(p.Key, d); return err })
		return map[string]any{"value": n}, err
	case "string.append":
		var n int
		err := st.write(p.Key, func() error {
			it, _, err := st.get(p.Key)
			if err != nil {
				return err
			}
			if err := st.wrote(p.Key, len(it.Value)+len(p.Value)); err != nil {
				return err
			}
			v := it.Value + p.Value
			n = len(v)
			_, err = tx.Set(p.Key, v, st.keepTTL(it))
			return err
		})
		return map[string]any{"length": n}, err
	case "string.mset":
		for _, r := range p.Pairs {
			if err := st.wrote(r.Key, len(r.Value)); err != nil {
				return nil, err
			}
			if err := st.write(r.Key, func() error { _, err := tx.Set(r.Key, r.Value, nil); return err }); err != nil {
				return nil, err
			}
		}
		return map[string]any{"success": true}, nil
	case "string.expire", "string.persist":
		it, found, err := st.get(p.Key)
		if err != nil || !found || op.Method == "string.persist" && it.ExpiresAt.IsZero() {
			return map[string]any{"success": false}, err // nothing to change
		}
		opts := setOpts(p.TTL) // persist: none
		if err := st.wrote(p.Key, len(it.Value)); err != nil {
			return nil, err
		}
		if err := st.write(p.Key, func() error { _, err := tx.Set(p.Key, it.Value, opts); return err }); err != nil {
			return nil, err
		}
		res := map[string]any{"success": true}
		if op.Method == "string.expire" {
			res["ttl"] = p.TTL
		}
		return res, nil
	case "keys.scan", "keys.count":
		return st.scan(op.Method == "keys.count", p)
	}
	return nil, dbxErrorf(dbxInvalidRequest, "unknown method %q", op.Method)
}

// scanClockEvery is how many keys a scan examines between looks at the
// clock: a regex may take up to its MatchTimeout on each.
const scanClockEvery = 16

// scan lists (or counts) the keys that match a pattern, in key order,
// after the cursor (the last key a previous scan examined, sealed when the
// connection may not read it: see scanCursor). With a token it examines
// only the keys between its access pattern's bounds, and passes over
// those it may not read: they do not move where a page stops. A scan
// examines at most ten times as many keys (that the connection may read)
// as it may return, so that a pattern that matches few keys still
// answers soon: it may then return
// fewer keys, or none, with a cursor to go on from. The scans and counts
// of one request examine at most MaxExaminedKeys keys in all, past which
// the request fails, and take about ScanTimeBudget, past which a scan
// returns the page so far and a count fails.
func (st *dbxTx) scan(count bool, p *dbxParams) (any, error) {
	method := "keys.scan"
	if count {
		method = "keys.count"
	}
	src := p.Pattern
	if src == "" {
		src = "*"
	}
	pat, err := pattern.Parse(src)
	if err != nil {
		return nil, dbxErrorf(dbxInvalidRequest, "pattern: %v", err)
	}
	limit := p.Count
	if limit == 0 {
		limit = st.a.opts.DefaultRangeLimit
	}
	limit = min(limit, st.a.opts.MaxRangeLimit)
	// A token's scan reads only the keys its access pattern's bounds
	// allow, as a range does.
	start, end := st.ac.narrow(pat.Bounds())
	if !count && p.Cursor != "" {
		from, err := st.a.openCursor(p.Cursor)
		if err != nil {
			return nil, dbxErrorf(dbxInvalidRequest, "cursor: %v", err)
		}
		if engine.KeyAfter(from) > start {
			start = engine.KeyAfter(from)
		}
	}
	// In a request that writes, the scan runs under the engine's writer
	// lock, which every writer of the process waits for: a hundredth of
	// the budget, the clock read after every key.
	budget, clockEvery := st.a.opts.ScanTimeBudget, scanClockEvery
	if st.writing {
		budget, clockEvery = budget/100, 1
	}
	if st.scanDeadline.IsZero() {
		st.scanDeadline = time.Now().Add(budget)
	}
	keys := []string{}
	n, examined, last, done, size, raw := 0, 0, "", true, 0, 0 // size: the keys' JSON, at most; raw: their bytes
	readable := false                                          // the connection may read last
	seen, lastSeen := 0, ""                                    // the keys examined that the connection may read; the last of them
	// A token's page stops, and its count fails, where the keys it may
	// read say: its own count of them (seen) decides when the clock is
	// read, not examined, which counts the others too. A run of keys it
	// may not read has a clock of its own (run, since runStart), so that
	// only a run that takes the whole budget by itself ends a page among
	// its keys, or fails a count; and those keys have a MaxExaminedKeys
	// of their own (examineForeign).
	token := !st.ac.full && st.ac.pattern != nil
	run, runStart := 0, time.Time{}
	outOfTime := func() error {
		return dbxErrorf(dbxWorkExceeded, "keys.count: a request's scans and counts may take %v (ScanTimeBudget; a hundredth of it in a request that writes) and this one took longer: narrow the pattern, or page with keys.scan", budget)
	}
	if end == "" || start < end {
		items, err := st.tx.Range(start, end, &engine.RangeOptions{KeysOnly: true})
		if err != nil {
			return nil, err
		}
	scan:
		for it, err := range items {
			if err != nil {
				return nil, err
			}
			if !token && examined > 0 && examined%clockEvery == 0 && time.Now().After(st.scanDeadline) {
				if count {
					return nil, outOfTime()
				}
				done = false // the page so far, and a cursor to go on from
				break
			}
			// The access first: the client's pattern runs only on the
			// keys it may read, so that its running out of time (or
			// its time) tells nothing of another key. A key it may not
			// read is examined and passed over, and nothing else: where
			// a page stops (its count, ten times its count examined, its
			// bytes, its time), whether it is done and its cursor depend
			// on the keys the connection may read alone, so that they
			// tell nothing of the others, after any cursor it makes up.
			switch ok, undecided := st.ac.allows(it.Key); {
			case undecided:
				return nil, dbxErrorf(dbxUnavailable, "%s", errUndecided)
			case !ok:
				if run == 0 {
					runStart = time.Now()
				}
				runOut := run > 0 && run%scanClockEvery == 0 && time.Since(runStart) > budget
				if runOut && count {
					return nil, outOfTime()
				}
				if !count && examined > 0 && (runOut || st.foreign == st.a.opts.MaxExaminedKeys) {
					// A run of keys it may not read that took the
					// budget by itself, or the keys it may not read
					// that a request may examine: the page ends among
					// them, its cursor sealed.
					done = false
					break scan
				}
				if err := st.examineForeign(method); err != nil {
					return nil, err
				}
				examined++
				run++
				last, readable = it.Key, false
				continue
			}
			run = 0
			if token && seen > 0 && seen%clockEvery == 0 && time.Now().After(st.scanDeadline) {
				if count {
					return nil, outOfTime()
				}
				last, readable, done = lastSeen, true, false // as below
				break
			}
			kb := jsonStringBound(it.Key) + 1
			// The bytes of the whole request's reply: what its other
			// operations read, and this page.
			over := int64(messageOverhead+st.bound+size+kb) > min(int64(st.a.opts.MaxReplyBytes), st.a.opts.MaxQueuedBytes)
			if !count && over && len(keys) == 0 && st.bound > 0 {
				return nil, dbxErrorf(dbxInvalidRequest, "%s: the keys and values asked for would pass %d bytes (MaxReplyBytes) or the connection's byte budget: ask for fewer at once", method, st.a.opts.MaxReplyBytes)
			}
			if !count && (len(keys) == limit || seen == 10*limit || len(keys) > 0 && over) {
				// The next page starts after the last key the
				// connection may read, not after those it may not
				// that came since: their cursor would be sealed.
				last, readable, done = lastSeen, true, false
				break
			}
			if err := st.examine(method); err != nil {
				return nil, err
			}
			examined++
			seen++
			last, readable, lastSeen = it.Key, true, it.Key
			switch ok, err := pat.TryMatch(it.Key); {
			case err != nil:
				return nil, dbxErrorf(dbxUnavailable, "the pattern could not decide on a key in time; try again")
			case !ok:
				continue
			}
			n++
			if !count {
				keys = append(keys, it.Key)
				size += kb
				raw += len(it.Key)
			}
		}
	}
	if count {
		return map[string]any{"count": n}, nil
	}
	st.size += raw
	st.bound += size
	cursor := ""
	if !done && last != "" {
		// The page's last key may be one the connection may not read:
		// its cursor is then sealed, see scanCursor.
		cursor = st.a.scanCursor(last, readable)
	}
	return map[string]any{"keys": keys, "cursor": cursor, "done": done}, nil
}
