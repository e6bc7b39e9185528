package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The DBX dialect (dbx.go) speaks the WebSocket API that DBX's
// documentation describes: JSON envelopes {id, method, params, timestamp}
// answered by {id, result, timestamp} or {id, error: {code, message},
// timestamp}. See docs/protocol.md, "The DBX dialect".

// dbxVersion is the version of DBX's protocol spoken; the query parameter
// version may say "1.0" (the default) or "1".
const dbxVersion = "1.0"

// DBX's error codes, and livekv's additions (marked).
const (
	dbxNotFound       = "not_found"
	dbxInvalidKey     = "invalid_key"
	dbxInvalidValue   = "invalid_value"
	dbxInvalidTTL     = "invalid_ttl"
	dbxTypeMismatch   = "type_mismatch"
	dbxUnauthorized   = "unauthorized"
	dbxForbidden      = "forbidden"
	dbxRateLimited    = "rate_limit_exceeded"
	dbxServerError    = "server_error"
	dbxUnavailable    = "service_unavailable"
	dbxInvalidRequest = "invalid_request"     // livekv: a message that is not a request, an unknown method
	dbxCompacted      = "revision_compacted"  // livekv: a resume from before the change history
	dbxQuotaExceeded  = "quota_exceeded"      // livekv: a write past Options.Quota
	dbxUnsupported    = "unsupported_version" // livekv: a version other than 1.0, at the handshake
	dbxWorkExceeded   = "work_limit_exceeded" // livekv: a request past MaxExaminedKeys, ScanTimeBudget or MaxWriteBytes
)

// dbxMethods are the methods, by their DBX names. The upper-case
// spellings of DBX's per-type pages map onto them (dbxUpper).
var dbxMethods = map[string]dbxMethod{
	"string.get":     {needKey: true},
	"string.set":     {needKey: true, needValue: true, ttl: true, write: true, single: true},
	"string.setnx":   {needKey: true, needValue: true, ttl: true, write: true, single: true},
	"string.delete":  {needKey: true, write: true, single: true},
	"string.exists":  {needKey: true},
	"string.incr":    {needKey: true, write: true, single: true},
	"string.incrby":  {needKey: true, amount: true, write: true, single: true},
	"string.decr":    {needKey: true, write: true, single: true},
	"string.decrby":  {needKey: true, amount: true, write: true, single: true},
	"string.append":  {needKey: true, needValue: true, write: true},
	"string.strlen":  {needKey: true},
	"string.mget":    {keys: true},
	"string.mset":    {pairs: true, write: true},
	"string.ttl":     {needKey: true},
	"string.expire":  {needKey: true, ttl: true, needTTL: true, write: true},
	"string.persist": {needKey: true, write: true},
	"keys.scan":      {pattern: true},
	"keys.count":     {pattern: true},
	"ping":           {message: true},
	"batch":          {alone: true, operations: true},
	"subscribe":      {alone: true},
	"unsubscribe":    {alone: true},
}

var dbxUpper = map[string]string{
	"GET": "string.get", "SET": "string.set", "SETNX": "string.setnx", "DEL": "string.delete",
	"DELETE": "string.delete", "EXISTS": "string.exists", "INCR": "string.incr", "INCRBY": "string.incrby",
	"DECR": "string.decr", "DECRBY": "string.decrby", "APPEND": "string.append", "STRLEN": "string.strlen",
	"MGET": "string.mget", "MSET": "string.mset", "TTL": "string.ttl", "EXPIRE": "string.expire",
	"PERSIST": "string.persist", "SCAN": "keys.scan", "PING": "ping", "BATCH": "batch",
	"SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "unsubscribe",
}

// dbxMethod says what a method's params hold.
type dbxMethod struct {
	needKey, needValue bool
	ttl, needTTL       bool // ttl (or DBX's SET spelling, expire) may, or must, be given
	amount             bool // amount is required
	keys, pairs        bool // keys (mget), pairs (mset): 1 or more
	pattern            bool // pattern, cursor, count
	message            bool // message, echoed (ping)
	write              bool // it writes: a batch holding one runs as a write transaction
	single             bool // one write the Store has a method for: alone, it may run without a transaction (Adapter.direct)
	alone              bool // not inside a batch
	operations         bool // operations: batch's, decoded only for it, so that nothing nests
}

// dbxRequest is one decoded DBX message.
type dbxRequest struct {
	ID        json.RawMessage // echoed as it came, whatever its JSON type; nil if absent
	Heartbeat bool            // {"type":"heartbeat"}: the client is alive
	Method    string          // its DBX name, string.get
	Params    dbxParams
}

// dbxParams are a request's params, checked against its method.
type dbxParams struct {
	Key            string
	Value          string
	TTL            int64 // seconds; 0 when not given
	Amount         int64
	Keys           []string
	Pairs          []record // mset's, in key order
	Pattern        string
	Cursor         string
	Count          int
	Message        *string // ping's; nil when not given
	Operations     []dbxOp
	Patterns       []string
	FromRevision   int64
	FromGiven      bool // fromRevision was in the message, even as 0
	SubscriptionID int64
}

// dbxOp is one operation of a batch.
type dbxOp struct {
	Method string
	Params dbxParams
}

// dbxError is an error reply's error, and an error that stops a batch.
type dbxError struct {
	Code    string `json:"code"`
	Message string `json:"message"`

	// livekv's: the index of the batch operation that failed; the
	// subscription a message is about; a 410's oldest revision held and
	// the revision a subscription is at.
	Operation      *int   `json:"operation,omitempty"`
	SubscriptionID int64  `json:"subscriptionId,omitempty"`
	Oldest         int64  `json:"oldest,omitempty"`
	Revision       *int64 `json:"revision,omitempty"` // as in wireError
}

func (e *dbxError) Error() string { return e.Code + ": " + e.Message }

func dbxErrorf(code, format string, args ...any) *dbxError {
	return &dbxError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// dbxMessage is a message to a DBX client: a response, an error, a
// heartbeat or a notification.
type dbxMessage struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Type   string          `json:"type,omitempty"`
	Result any             `json:"result,omitempty"` // built of map[string]any, []any, []string, strings, numbers, bools
	Error  *dbxError       `json:"error,omitempty"`

	// A notification's.
	SubscriptionID int64   `json:"subscriptionId,omitempty"`
	Key            *string `json:"key,omitempty"`
	Value          *string `json:"value,omitempty"`
	Deleted        bool    `json:"deleted,omitempty"` // the key was deleted or expired: value is absent
	Revision       int64   `json:"revision,omitempty"`

	Timestamp string `json:"timestamp"`
}

// dbxTime is a DBX timestamp: ISO 8601, UTC, in milliseconds.
func dbxTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// dbxWire is a DBX message as it arrives.
type dbxWire struct {
	ID     json.RawMessage `json:"id"`
	Type   string          `json:"type"`
	Method *string         `json:"method"`
	Params json.RawMessage `json:"params"`
}

// dbxWireParams are params as they arrive.
type dbxWireParams struct {
	Key        *string                    `json:"key"`
	Value      json.RawMessage            `json:"value"`
	TTL        json.RawMessage            `json:"ttl"`
	Expire     json.RawMessage            `json:"expire"`
	Amount     json.RawMessage            `json:"amount"`
	Keys       []string                   `json:"keys"`
	Pairs      map[string]json.RawMessage `json:"pairs"`
	Pattern    string                     `json:"pattern"`
	Cursor     string                     `json:"cursor"`
	Count      *int                       `json:"count"`
	Message    *string                    `json:"message"`
	Operations []struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	} `json:"operations"`
	Patterns       []string `json:"patterns"`
	FromRevision   *int64   `json:"fromRevision"`
	SubscriptionID int64    `json:"subscriptionId"`
}

// dbxMaxTTL is the longest TTL, in seconds, that DBX accepts (68 years).
const dbxMaxTTL = math.MaxInt32

// decodeDBX decodes one DBX message: one JSON value, with nothing but
// white space after it. maxItems bounds the operations of a batch and the
// keys of mget and mset. On error it still returns the message's id when
// it had one, so that the error reply carries it. A message that is not
// valid UTF-8, or escapes an unpaired surrogate, is an error (see
// checkJSONText).
func decodeDBX(b []byte, maxItems int) (dbxRequest, *dbxError) {
	var w dbxWire
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return dbxRequest{ID: peekDBXID(b)}, dbxErrorf(dbxInvalidRequest, "malformed JSON: %v", err)
	}
	r := dbxRequest{ID: w.ID}
	if !atEnd(dec) {
		return r, dbxErrorf(dbxInvalidRequest, "malformed JSON: more after the message's value")
	}
	if err := checkJSONText(b); err != nil {
		return r, dbxErrorf(dbxInvalidRequest, "%v", err)
	}
	if w.Method == nil && w.Type == "heartbeat" {
		r.Heartbeat = true
		return r, nil
	}
	if w.Method == nil {
		return r, dbxErrorf(dbxInvalidRequest, "missing method")
	}
	name, m, derr := dbxLookup(*w.Method)
	if derr != nil {
		return r, derr
	}
	r.Method = name
	p, derr := decodeDBXParams(m, w.Params, maxItems)
	if derr != nil {
		return r, derr
	}
	r.Params = p
	return r, nil
}

// dbxLookup finds a method by its DBX name or its upper-case spelling.
func dbxLookup(name string) (string, dbxMethod, *dbxError) {
	if full, ok := dbxUpper[name]; ok {
		name = full
	}
	m, ok := dbxMethods[name]
	if !ok {
		return "", m, dbxErrorf(dbxInvalidRequest, "unknown method %.64q", name)
	}
	return name, m, nil
}

func decodeDBXParams(m dbxMethod, raw json.RawMessage, maxItems int) (dbxParams, *dbxError) {
	var p dbxParams
	var w dbxWireParams
	if len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&w); err != nil {
			code := dbxInvalidRequest
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				switch te.Field {
				case "key", "keys", "pairs":
					code = dbxInvalidKey
				}
			}
			return p, dbxErrorf(code, "params: %v", err)
		}
	}
	if m.needKey {
		if w.Key == nil || *w.Key == "" {
			return p, dbxErrorf(dbxInvalidKey, "key is required")
		}
		p.Key = *w.Key
	}
	if m.needValue {
		if len(w.Value) == 0 || string(w.Value) == "null" {
			return p, dbxErrorf(dbxInvalidValue, "value is required")
		}
		v, err := valueText(w.Value)
		if err != nil {
			return p, dbxErrorf(dbxInvalidValue, "value must be a string or a number")
		}
		p.Value = v
	}
	if m.ttl {
		ttl := w.TTL
		if len(ttl) == 0 || string(ttl) == "null" {
			ttl = w.Expire
		}
		if len(ttl) > 0 && string(ttl) != "null" {
			n, err := strconv.ParseInt(string(ttl), 10, 64)
			if err != nil || n < 1 || n > dbxMaxTTL {
				return p, dbxErrorf(dbxInvalidTTL, "ttl must be a whole number of seconds from 1 to %d", dbxMaxTTL)
			}
			p.TTL = n
		} else if m.needTTL {
			return p, dbxErrorf(dbxInvalidTTL, "ttl is required")
		}
	}
	if m.amount {
		if len(w.Amount) == 0 || string(w.Amount) == "null" {
			return p, dbxErrorf(dbxInvalidValue, "amount is required")
		}
		n, err := strconv.ParseInt(string(w.Amount), 10, 64)
		if err != nil {
			return p, dbxErrorf(dbxInvalidValue, "amount %.32s is not a 64-bit integer", w.Amount)
		}
		p.Amount = n
	}
	if m.keys {
		if len(w.Keys) == 0 || len(w.Keys) > maxItems {
			return p, dbxErrorf(dbxInvalidRequest, "keys: give 1 to %d", maxItems)
		}
		if slices.Contains(w.Keys, "") {
			return p, dbxErrorf(dbxInvalidKey, "keys: an empty key")
		}
		p.Keys = w.Keys
	}
	if m.pairs {
		if len(w.Pairs) == 0 || len(w.Pairs) > maxItems {
			return p, dbxErrorf(dbxInvalidRequest, "pairs: give 1 to %d", maxItems)
		}
		for k, raw := range w.Pairs {
			if k == "" {
				return p, dbxErrorf(dbxInvalidKey, "pairs: an empty key")
			}
			v, err := valueText(raw)
			if err != nil || string(raw) == "null" {
				return p, dbxErrorf(dbxInvalidValue, "pairs: the value of %.64q must be a string or a number", k)
			}
			p.Pairs = append(p.Pairs, record{Key: k, Value: v})
		}
		slices.SortFunc(p.Pairs, func(a, b record) int { return strings.Compare(a.Key, b.Key) })
	}
	if m.pattern {
		p.Pattern, p.Cursor = w.Pattern, w.Cursor
		if w.Count != nil {
			if *w.Count < 0 {
				return p, dbxErrorf(dbxInvalidRequest, "negative count")
			}
			p.Count = *w.Count
		}
	}
	if m.message {
		p.Message = w.Message
	}
	p.Patterns, p.SubscriptionID = w.Patterns, w.SubscriptionID
	if w.FromRevision != nil {
		p.FromRevision, p.FromGiven = *w.FromRevision, true
	}
	if p.FromRevision < 0 {
		return p, dbxErrorf(dbxInvalidRequest, "negative fromRevision")
	}
	if m.operations {
		if len(w.Operations) == 0 || len(w.Operations) > maxItems {
			return p, dbxErrorf(dbxInvalidRequest, "operations: give 1 to %d", maxItems)
		}
		p.Operations = make([]dbxOp, len(w.Operations))
		for i, o := range w.Operations {
			name, om, derr := dbxLookup(o.Method)
			if derr == nil && om.alone {
				derr = dbxErrorf(dbxInvalidRequest, "%s cannot be inside a batch", name)
			}
			if derr == nil {
				p.Operations[i].Params, derr = decodeDBXParams(om, o.Params, maxItems)
			}
			if derr != nil {
				derr.Operation = ptr(i)
				derr.Message = fmt.Sprintf("operations[%d]: %s", i, derr.Message)
				return p, derr
			}
			p.Operations[i].Method = name
		}
	}
	return p, nil
}

// peekDBXID finds the id of a message that did not decode as a whole.
func peekDBXID(b []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m["id"]
}

// anyBound returns at least the length of v encoded by json.Marshal, for
// the values a dbxMessage's Result is built of.
func anyBound(v any) int {
	switch v := v.(type) {
	case nil:
		return 4
	case string:
		return jsonStringBound(v)
	case *string:
		if v == nil {
			return 4
		}
		return jsonStringBound(*v)
	case bool:
		return 5
	case int, int64:
		return 20
	case []string:
		n := 2
		for _, s := range v {
			n += jsonStringBound(s) + 1
		}
		return n
	case []any:
		n := 2
		for _, e := range v {
			n += anyBound(e) + 1
		}
		return n
	case map[string]any:
		n := 2
		for k, e := range v {
			n += jsonStringBound(k) + anyBound(e) + 2
		}
		return n
	}
	b, _ := json.Marshal(v) // not a type results are built of: measured, not bounded
	return len(b)
}
