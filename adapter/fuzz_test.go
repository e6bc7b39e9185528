package adapter

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeRequest: any bytes decode to a request or to errBadRequest,
// never a panic; a decoded request's value round-trips through JSON.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":1,"key":"a","messageId":1}`,
		`{"op":2,"key":"a","value":"v","messageId":2}`,
		`{"op":6,"key":"n","value":-5}`,
		`{"op":5,"key":"a","endKey":"z","limit":10}`,
		`{"op":100,"patterns":["user:*"],"fromRevision":7}`,
		`{"op":1,"key":"a","consistency":"linearizable","minRevision":12}`,
		`{"op":5,"key":"a","consistency":"Stale"}`, `{"op":1,"key":"a","minRevision":-1}`, `{"op":1,"key":"a","consistency":7}`,
		`{"op":1,"key":`, `[]`, `null`, `{"op":"1"}`, `{"op":2,"key":"a","value":{"x":1}}`,
		`{"op":1,"key":"a","messageId":7.0}`, `{"op":1,"key":"a","messageId":-1e3}`, `{"op":1,"key":"a","messageId":7.5}`,
		`{"op":1,"key":"a","messageId":1e99999999999}`, `{"op":1,"key":5,"messageId":9223372036854775808}`,
		`{"op":2,"key":"a\ud800","value":"v"}`, `{"op":2,"key":"\\udc00","value":"\ud83d\ude00"}`, "{\"op\":1,\"key\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		// A messageId carried back is a JSON number of at most a
		// float64's spelling; one taken is an int64's.
		if r.MessageID != "" {
			if len(r.MessageID) > 24 || !json.Valid([]byte(r.MessageID)) {
				t.Fatalf("messageId %q carried back", r.MessageID)
			}
			if _, perr := strconv.ParseInt(string(r.MessageID), 10, 64); err == nil && perr != nil {
				t.Fatalf("messageId %q taken: %v", r.MessageID, perr)
			}
		}
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not errBadRequest", err)
			}
			return
		}
		if _, err := parseLevel(r.Consistency); err != nil || r.MinRevision < 0 {
			t.Fatalf("decoded a bad read level %q or minRevision %d", r.Consistency, r.MinRevision)
		}
		if r.HasValue {
			enc, err := json.Marshal(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			var back string
			if err := json.Unmarshal(enc, &back); err != nil || back != r.Value {
				t.Fatalf("value %q does not round-trip", r.Value)
			}
		}
	})
}

// FuzzVerifyToken: whatever the bytes, verifyToken never panics, and what
// it accepts carries claims that sign and verify again.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	good, err := signToken(secret, claims{Version: tokenVersion, TokenConfig: TokenConfig{SubscribeKeys: []string{"a"}, AccessPattern: "^a"}, Expires: now.Unix() + 60})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Add(good[:len(good)-2])
	// Other spellings of good, which it refuses: a line break or a
	// carriage return inside a part, padding, final bits that are not
	// zero.
	payload, sig, _ := strings.Cut(good, ".")
	f.Add(payload + "." + sig[:5] + "\n" + sig[5:])
	f.Add(payload + "." + sig[:5] + "\r\n" + sig[5:])
	f.Add(payload[:3] + "\n" + payload[3:] + "." + sig)
	f.Add(payload + "." + sig + "=")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	f.Add(payload + "." + sig[:len(sig)-1] + string(alphabet[last|1]))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := verifyToken(secret, tok, now, maxTokenLen(64))
		if err != nil {
			return
		}
		// A token has one spelling: what it accepts is the encoding of
		// the bytes its parts decode to.
		p, s, _ := strings.Cut(tok, ".")
		pb, perr := base64.RawURLEncoding.DecodeString(p)
		sb, serr := base64.RawURLEncoding.DecodeString(s)
		if perr != nil || serr != nil || tok != base64.RawURLEncoding.EncodeToString(pb)+"."+base64.RawURLEncoding.EncodeToString(sb) {
			t.Fatalf("accepted %q, not the one spelling of its bytes", tok)
		}
		again, err := signToken(secret, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyToken(secret, again, now, maxTokenLen(64)); err != nil {
			t.Fatalf("re-signed claims do not verify: %v", err)
		}
	})
}

// FuzzOpenCursor: whatever the text, openCursor never panics; a cursor
// not sealed is its key, one that is opens or is refused with errCursor,
// and any key sealed opens to itself.
func FuzzOpenCursor(f *testing.F) {
	aead, err := newCursorAEAD([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	a := &Adapter{cursors: aead}
	sealed := a.scanCursor("room:x:secret", false)
	for _, s := range []string{"", "room:1:a", sealedCursorPrefix, sealedCursorPrefix + "AAAA", sealed, sealed + "\n", sealed[:len(sealed)-1], sealed + "=", sealedCursorPrefix + "~" + sealed} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		key, err := a.openCursor(cursor)
		switch {
		case !strings.HasPrefix(cursor, sealedCursorPrefix):
			if err != nil || key != cursor {
				t.Fatalf("plain cursor %q opens to %q, %v", cursor, key, err)
			}
		case err != nil && !errors.Is(err, errCursor):
			t.Fatalf("error %v is not errCursor", err)
		}
		for _, readable := range []bool{false, true} {
			c := a.scanCursor(cursor, readable)
			if back, err := a.openCursor(c); err != nil || back != cursor {
				t.Fatalf("cursor of %q (readable %v) opens to %q, %v", cursor, readable, back, err)
			}
		}
	})
}

// FuzzDecodeDBX: any bytes decode to a DBX request or to a DBX error
// with a code, never a panic; a decoded request names a known method (or
// is a heartbeat), and its id, when it has one, is valid JSON that the
// reply can echo.
func FuzzDecodeDBX(f *testing.F) {
	for _, s := range []string{
		`{"id":"msg_1","method":"string.get","params":{"key":"k"},"timestamp":"2024-01-15T10:30:00Z"}`,
		`{"id":7,"method":"SET","params":{"key":"k","value":"v","expire":60}}`,
		`{"id":{"a":1},"method":"string.mset","params":{"pairs":{"a":"1","b":2}}}`,
		`{"id":null,"method":"batch","params":{"operations":[{"method":"INCRBY","params":{"key":"n","amount":-3}},{"method":"string.mget","params":{"keys":["a","b"]}}]}}`,
		`{"method":"subscribe","params":{"patterns":["user:*"],"fromRevision":12}}`,
		`{"method":"keys.scan","params":{"pattern":"/^a/","cursor":"a1","count":10}}`,
		`{"type":"heartbeat","timestamp":"2024-01-15T10:30:00Z"}`,
		`{"id":1,"method":"batch","params":{"operations":[{"method":"batch"}]}}`,
		`{"id":1,"method":"string.set","params":{"key":"a\ud800","value":"v"}}`,
		`{"id":1,"method":"string.set","params":{"key":"k","value":"v","ttl":0}}`,
		`{"id":2,"method":"PING","params":{"message":"hi"}}`,
		`{"id":3,"method":"ping","params":{"message":5}}`,
		`{"id":4,"method":"INCRBY","params":{"key":"n"}}`,
		`{"id":5,"method":"no.such","params":{"key":"n"}}`,
		`{"id":[1,`, `[]`, `null`, `{"method":7}`, "{\"method\":\"GET\",\"params\":{\"key\":\"\xff\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, derr := decodeDBX(b, 16)
		if r.ID != nil && !json.Valid(r.ID) {
			t.Fatalf("id %q is not JSON", r.ID)
		}
		// The method names the request in OnRequest's op, a metrics
		// label: it is one of the methods, or none, never the client's
		// own spelling.
		if _, ok := dbxMethods[r.Method]; r.Method != "" && !ok {
			t.Fatalf("decoded unknown method %q", r.Method)
		}
		if derr != nil {
			if derr.Code == "" || derr.Message == "" {
				t.Fatalf("error without a code or message: %+v", derr)
			}
			return
		}
		if r.Heartbeat {
			return
		}
		if _, ok := dbxMethods[r.Method]; !ok {
			t.Fatalf("decoded unknown method %q", r.Method)
		}
		if len(r.Params.Operations) > 16 || len(r.Params.Keys) > 16 || len(r.Params.Pairs) > 16 {
			t.Fatalf("more items than the bound: %+v", r.Params)
		}
		for _, op := range r.Params.Operations {
			if m, ok := dbxMethods[op.Method]; !ok || m.alone {
				t.Fatalf("batch holds %q", op.Method)
			}
		}
		if _, err := json.Marshal(dbxMessage{ID: r.ID, Timestamp: "t"}); err != nil {
			t.Fatalf("the id cannot be echoed: %v", err)
		}
	})
}

// TestDecodeDBX_NoNesting: params.operations is read for batch alone, so
// that a message cannot nest operations to make the decoder read it
// again at every level.
func TestDecodeDBX_NoNesting(t *testing.T) {
	inner := `{"method":"ping"}`
	for range 50 {
		inner = `{"method":"string.get","params":{"key":"k","operations":[` + inner + `]}}`
	}
	r, derr := decodeDBX([]byte(`{"id":1,"method":"batch","params":{"operations":[`+inner+`]}}`), 10)
	if derr != nil {
		t.Fatal(derr)
	}
	if len(r.Params.Operations) != 1 || r.Params.Operations[0].Params.Operations != nil {
		t.Fatalf("operations decoded below the batch: %+v", r.Params.Operations)
	}
	if _, derr := decodeDBX([]byte(`{"method":"batch","params":{}}`), 10); derr == nil || derr.Code != dbxInvalidRequest {
		t.Fatalf("a batch without operations: %v", derr)
	}
}

// FuzzRecordBound: a range reply's records, revisions included, encode in
// no more bytes than encodedBound counts for them, whether it adds them
// up itself or takes rangeReply's count.
func FuzzRecordBound(f *testing.F) {
	f.Add("k", "v", int64(1))
	f.Add("<&>\u2028", "\x00\xff\"\\", int64(-9223372036854775808))
	f.Add("", "", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, key, value string, rev int64) {
		records := []record{{Key: key, Value: value, Revision: rev}, {Key: value, Value: key, Revision: rev}}
		r := reply{Code: 200, MessageID: "-1", Records: &records, Count: ptr(2), Truncated: ptr(true), Revision: &rev}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := encodedBound(r)
		if !ok || n < len(b) {
			t.Fatalf("bound %d (%v) under the %d bytes encoded", n, ok, len(b))
		}
		r.recordsBound = recordBound(key, value) + recordBound(value, key)
		if n, _ := encodedBound(r); n < len(b) {
			t.Fatalf("bound %d from rangeReply's count under the %d bytes encoded", n, len(b))
		}
	})
}
