package adapter

import (
	"encoding/json"
	"errors"
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
		`{"op":1,"key":`, `[]`, `null`, `{"op":"1"}`, `{"op":2,"key":"a","value":{"x":1}}`,
		`{"op":2,"key":"a\ud800","value":"v"}`, `{"op":2,"key":"\\udc00","value":"\ud83d\ude00"}`, "{\"op\":1,\"key\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not errBadRequest", err)
			}
			return
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
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := verifyToken(secret, tok, now)
		if err != nil {
			return
		}
		again, err := signToken(secret, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyToken(secret, again, now); err != nil {
			t.Fatalf("re-signed claims do not verify: %v", err)
		}
	})
}
