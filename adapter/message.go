package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// request is one message from a client.
type request struct {
	Op        int         `json:"op"`
	Key       string      `json:"key"`
	Value     string      `json:"-"` // a JSON string, or the text of a JSON number
	HasValue  bool        `json:"-"`
	EndKey    string      `json:"endKey,omitempty"`
	Limit     int         `json:"limit,omitempty"`
	MessageID json.Number `json:"messageId,omitempty"` // see messageID; "" for none

	// Extensions.
	Patterns       []string `json:"patterns,omitempty"`
	FromRevision   int64    `json:"fromRevision,omitempty"`
	FromGiven      bool     `json:"-"` // fromRevision was in the message, even as 0
	SubscriptionID int64    `json:"subscriptionId,omitempty"`
	Revision       int64    `json:"revision,omitempty"`
	TTL            int64    `json:"ttl,omitempty"`         // set, compare-and-swap: milliseconds until the key expires; 0 never
	Consistency    string   `json:"consistency,omitempty"` // get, range: the read level; "" is the connection's
	MinRevision    int64    `json:"minRevision,omitempty"` // get, range: read only once the node has applied this revision
}

// wireRequest is Request as it arrives: value may be a string or a number.
type wireRequest struct {
	Op             *int            `json:"op"`
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	EndKey         string          `json:"endKey"`
	Limit          *int            `json:"limit"`
	MessageID      json.RawMessage `json:"messageId"`
	Patterns       []string        `json:"patterns"`
	FromRevision   *int64          `json:"fromRevision"`
	SubscriptionID int64           `json:"subscriptionId"`
	Revision       int64           `json:"revision"`
	TTL            int64           `json:"ttl"`
	Consistency    string          `json:"consistency"`
	MinRevision    int64           `json:"minRevision"`
}

// errBadRequest marks a message that cannot be decoded or makes no sense.
var errBadRequest = errors.New("bad request")

// decodeRequest decodes one client message: one JSON value, with nothing
// but white space after it. On error it still returns the messageId when
// the message had a readable one, so that the reply can carry it. A
// message that is not valid UTF-8, or escapes an unpaired surrogate, is
// an error: decoded, it would hold U+FFFD in its place.
func decodeRequest(b []byte) (request, error) {
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		id, _ := messageID(peekMessageID(b))
		return request{MessageID: id}, fmt.Errorf("%w: malformed JSON: %v", errBadRequest, err)
	}
	id, idErr := messageID(w.MessageID)
	if !atEnd(dec) {
		return request{MessageID: id}, fmt.Errorf("%w: malformed JSON: more after the message's value", errBadRequest)
	}
	r := request{Key: w.Key, EndKey: w.EndKey, MessageID: id, Patterns: w.Patterns,
		SubscriptionID: w.SubscriptionID, Revision: w.Revision, TTL: w.TTL, MinRevision: w.MinRevision}
	if idErr != nil {
		return r, idErr
	}
	if w.FromRevision != nil {
		r.FromRevision, r.FromGiven = *w.FromRevision, true
	}
	if err := checkJSONText(b); err != nil {
		return r, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if w.Op == nil {
		return r, fmt.Errorf("%w: missing op", errBadRequest)
	}
	level, err := parseLevel(w.Consistency)
	if err != nil {
		return r, err
	}
	r.Consistency = level
	if r.MinRevision < 0 {
		return r, fmt.Errorf("%w: negative minRevision", errBadRequest)
	}
	r.Op = *w.Op
	if w.Limit != nil {
		if *w.Limit < 0 {
			return r, fmt.Errorf("%w: negative limit", errBadRequest)
		}
		r.Limit = *w.Limit
	}
	if len(w.Value) > 0 && string(w.Value) != "null" {
		v, err := valueText(w.Value)
		if err != nil {
			return r, err
		}
		r.Value, r.HasValue = v, true
	}
	return r, nil
}

// atEnd reports whether only white space follows the value dec decoded.
// dec.More is no test of it: it is false before a stray '}' or ']'.
func atEnd(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// valueText returns a value sent as a JSON string or number as text.
func valueText(raw json.RawMessage) (string, error) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: value: %v", errBadRequest, err)
		}
		return s, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: value must be a string or a number", errBadRequest)
}

// peekMessageID finds the messageId of a message that did not decode as
// a whole, so that the error reply can still carry it.
func peekMessageID(b []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m["messageId"]
}

// messageID is the messageId a request gave, as its reply carries it
// back: "" for none (none given, or null). A JSON number that is an
// integer of int64's range, however written (7, 7.0, 1e3, 700e-2), is
// the id, in its plain spelling ("7"); any other (7.5, 1e19) is an
// error, and is still carried back, as the float64 it is nearest to (the
// number a JavaScript client sent), so that the client can match the
// 400. A number no float64 holds (1e400), or a value that is no number,
// is carried back as none.
func messageID(raw json.RawMessage) (json.Number, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return "", fmt.Errorf("%w: messageId must be a number", errBadRequest)
	}
	if n, ok := exactInt64(string(raw)); ok {
		return json.Number(strconv.FormatInt(n, 10)), nil
	}
	err := fmt.Errorf("%w: messageId must be an integer from -2^63 to 2^63-1", errBadRequest)
	f, ferr := strconv.ParseFloat(string(raw), 64)
	if ferr != nil {
		return "", err
	}
	back, _ := json.Marshal(f) // as JavaScript spells it: 7.5, 10000000000000000000
	return json.Number(back), err
}

// exactInt64 returns the value of num, the text of a JSON number, if it
// is an integer that an int64 holds, written in any way JSON allows
// (7.0, 1e3, 700e-2). It decides on the decimal digits, not a float64's
// rounding of them (9007199254740993.0 is itself), and never builds a
// number of more than 19 digits, whatever the exponent.
func exactInt64(num string) (int64, bool) {
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(num), "e")
	whole, frac, _ := strings.Cut(mant, ".")
	e := int64(0)
	if hasExp {
		exp = strings.TrimPrefix(exp, "+")
		var err error
		if e, err = strconv.ParseInt(exp, 10, 32); err != nil {
			// Past 32 bits: an exponent that large leaves a nonzero
			// number far outside int64, whether up or down.
			if strings.Trim(whole+frac, "0") != "" {
				return 0, false
			}
			e = 0
		}
	}
	// The value is digits × 10^e.
	digits := strings.TrimLeft(whole+frac, "0")
	e -= int64(len(frac))
	if digits == "" {
		return 0, true
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		e++
	}
	if e < 0 || int64(len(digits))+e > 19 {
		return 0, false // a fraction, or 10^19 or more
	}
	text := digits + strings.Repeat("0", int(e))
	if neg {
		text = "-" + text
	}
	n, err := strconv.ParseInt(text, 10, 64)
	return n, err == nil
}

// delta is the integer a request's value holds, for increments.
func (r *request) delta() (int64, error) {
	if !r.HasValue {
		return 0, fmt.Errorf("%w: missing value (the increment)", errBadRequest)
	}
	n, err := strconv.ParseInt(r.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: increment %.32q is not an integer", errBadRequest, r.Value)
	}
	return n, nil
}

// reply is a response to one request. Fields that do not apply are left
// out.
type reply struct {
	Code      int         `json:"code,omitempty"`
	MessageID json.Number `json:"messageId,omitempty"` // the request's (see messageID)
	Error     string      `json:"error,omitempty"`
	ErrorCode string      `json:"errorCode,omitempty"` // livekv's: a cluster refusal's code (internal/wire)
	Message   string      `json:"message,omitempty"`
	Success   *bool       `json:"success,omitempty"`
	Key       string      `json:"key,omitempty"`
	Value     *string     `json:"value,omitempty"`
	Records   *[]record   `json:"records,omitempty"`
	Count     *int        `json:"count,omitempty"`
	Truncated *bool       `json:"truncated,omitempty"`
	NewValue  *int64      `json:"newValue,omitempty"`

	// Extensions.
	// Revision is set on the replies that carry one, 0 included (a
	// subscribe to, or a range of, an empty store): a client resumes
	// from it, and one left out would be "from now". nil on the
	// replies that carry none (unsubscribe, most errors).
	Revision       *int64 `json:"revision,omitempty"`
	SubscriptionID int64  `json:"subscriptionId,omitempty"`
	Oldest         int64  `json:"oldest,omitempty"`
	// AtRevision is the revision the reply reflects (seen), on the
	// WebSocket, where it says more than Revision: a get, 404 included,
	// was read at it, though its item's revision is older. A client
	// that follows its session across connections takes it as one.
	AtRevision int64 `json:"atRevision,omitempty"`

	recordsBound int    // at least the encoded length of Records, when rangeReply has counted it
	seen         *int64 // the revision the reply reflects, 0 included: a write's, or at least the one a read saw; nil for none
}

// revision is the reply's Revision, 0 if it carries none.
func (r *reply) revision() int64 {
	if r.Revision == nil {
		return 0
	}
	return *r.Revision
}

// record is one key and value of a range reply, with the revision of the
// key's last change (livekv's, which HPKV clients ignore: a page edits the
// record with compare-and-swap on it). Records that are not encoded (the
// pairs of a DBX mset) leave it 0.
type record struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Revision int64  `json:"revision,omitempty"`
}

// notification tells a subscribed connection that a key changed.
type notification struct {
	Type           string  `json:"type"` // "notification"
	Key            string  `json:"key"`
	Value          *string `json:"value"` // null when the key was deleted or expired
	Timestamp      int64   `json:"timestamp"`
	Revision       int64   `json:"revision"`
	SubscriptionID int64   `json:"subscriptionId,omitempty"`
}

func ptr[T any](v T) *T { return &v }
