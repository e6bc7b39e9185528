package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

type m = map[string]any

func TestWS_Operations(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)

	require.Equal(t, m{"code": 404.0, "messageId": 1.0, "error": "Record not found"}, c.call(m{"op": 1, "key": "k"}))
	r := c.call(m{"op": 2, "key": "k", "value": "v1"})
	require.Equal(t, 200.0, r["code"])
	require.Equal(t, true, r["success"])
	require.Equal(t, m{"code": 200.0, "messageId": 3.0, "key": "k", "value": "v1", "revision": r["revision"]}, c.call(m{"op": 1, "key": "k"}))

	// Patch: JSON objects merge, anything else appends; a number value is its text.
	c.call(m{"op": 2, "key": "j", "value": `{"a":1,"b":2}`})
	require.Equal(t, 200.0, c.call(m{"op": 3, "key": "j", "value": `{"b":null,"c":3}`})["code"])
	require.Equal(t, `{"a":1,"c":3}`, c.call(m{"op": 1, "key": "j"})["value"])
	c.call(m{"op": 3, "key": "k", "value": "+more"})
	require.Equal(t, "v1+more", c.call(m{"op": 1, "key": "k"})["value"])
	c.call(m{"op": 2, "key": "num", "value": 42})
	require.Equal(t, "42", c.call(m{"op": 1, "key": "num"})["value"])

	// Increment.
	r = c.call(m{"op": 6, "key": "n", "value": 5})
	require.Equal(t, m{"code": 200.0, "messageId": r["messageId"], "success": true, "key": "n", "newValue": 5.0, "revision": r["revision"]}, r)
	require.Equal(t, r["revision"], c.call(m{"op": 1, "key": "n"})["revision"], "the revision the increment committed at")
	require.Equal(t, 3.0, c.call(m{"op": 6, "key": "n", "value": -2})["newValue"])
	require.Equal(t, 400.0, c.call(m{"op": 6, "key": "k", "value": 1})["code"], "stored value is not an integer")
	require.Equal(t, 400.0, c.call(m{"op": 6, "key": "n", "value": "x"})["code"], "delta is not an integer")

	// Delete.
	r = c.call(m{"op": 4, "key": "k"})
	require.Equal(t, 200.0, r["code"])
	require.Greater(t, r["revision"], c.call(m{"op": 1, "key": "n"})["revision"], "the revision the deletion committed at")
	require.Equal(t, 404.0, c.call(m{"op": 4, "key": "k"})["code"])

	// Range: endKey included, limit, count, truncated.
	for i := 0; i < 5; i++ {
		c.call(m{"op": 2, "key": fmt.Sprintf("r:%d", i), "value": fmt.Sprint(i)})
	}
	r = c.call(m{"op": 5, "key": "r:1", "endKey": "r:3"})
	rev := func(k string) any { return c.call(m{"op": 1, "key": k})["revision"] }
	require.Equal(t, []any{m{"key": "r:1", "value": "1", "revision": rev("r:1")}, m{"key": "r:2", "value": "2", "revision": rev("r:2")},
		m{"key": "r:3", "value": "3", "revision": rev("r:3")}}, r["records"], "each record with its last change's revision")
	require.Equal(t, 3.0, r["count"])
	require.Equal(t, false, r["truncated"])
	require.Equal(t, float64(f.db.Revision()), r["revision"], "the revision the range was read at")
	r = c.call(m{"op": 5, "key": "r:", "endKey": "r:~", "limit": 2})
	require.Equal(t, 2.0, r["count"])
	require.Equal(t, true, r["truncated"])
	r = c.call(m{"op": 5, "key": "zz", "endKey": "zzz"})
	require.Equal(t, []any{}, r["records"])

	// CompareAndSwap (an extension): on the key's revision.
	r = c.call(m{"op": 102, "key": "cas", "value": "a", "revision": 0})
	require.Equal(t, 200.0, r["code"])
	rev1 := r["revision"]
	require.Equal(t, 409.0, c.call(m{"op": 102, "key": "cas", "value": "b", "revision": 0})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 102, "key": "cas", "value": "b", "revision": rev1})["code"])
	require.Equal(t, 409.0, c.call(m{"op": 102, "key": "cas", "value": "c", "revision": rev1})["code"])
}

// TestWS_ManyInFlight sends 300 requests before reading any reply: every
// one gets exactly one reply, with its messageId.
func TestWS_ManyInFlight(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	const n = 300
	for i := 1; i <= n; i++ {
		c.write(m{"op": 6, "key": fmt.Sprintf("k%d", i%10), "value": 1, "messageId": i})
	}
	seen := map[float64]bool{}
	for i := 0; i < n; i++ {
		r := c.read()
		require.Equal(t, 200.0, r["code"], "%v", r)
		id := r["messageId"].(float64)
		require.False(t, seen[id], "two replies to %v", id)
		seen[id] = true
	}
	for k := 0; k < 10; k++ {
		require.Equal(t, "30", c.call(m{"op": 1, "key": fmt.Sprintf("k%d", k)})["value"])
	}
}

// TestWS_MessageIDAnyIntegerNumber: a messageId is any JSON number that
// is an integer of int64's range, however written (7.0, 1e3), and the
// reply carries it back plainly; another number (7.5, 1e19) gets a 400
// that carries it back as the float64 it is nearest to, which a
// JavaScript client matches; a value no float64 holds, or one that is no
// number, gets a 400 without one. Before, 7.0 or 1e3 failed the request
// with 400, and that reply had no messageId: the client could not match
// it.
func TestWS_MessageIDAnyIntegerNumber(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	for _, tc := range []struct {
		id   string
		code float64
		back string // the reply's messageId, as written; "" for none
	}{
		{`7.0`, 200, `7`},
		{`1e3`, 200, `1000`},
		{`1E+3`, 200, `1000`},
		{`700e-2`, 200, `7`},
		{`-0.0`, 200, `0`},
		{`9007199254740993.0`, 200, `9007199254740993`}, // above 2^53: exact, not a float64's rounding
		{`-9223372036854775808`, 200, `-9223372036854775808`},
		{`0.922337203685477580700e19`, 200, `9223372036854775807`},
		{`null`, 200, ``},
		{`7.5`, 400, `7.5`},
		{`1e-3`, 400, `0.001`},
		{`9223372036854775808`, 400, `9223372036854776000`}, // 2^63, as JavaScript spells it
		{`1e19`, 400, `10000000000000000000`},
		{`1e-7`, 400, `1e-7`},
		{`1e400`, 400, ``},
		{`1e99999999999`, 400, ``},
		{`"7"`, 400, ``},
		{`true`, 400, ``},
	} {
		c.writeRaw([]byte(`{"op":2,"key":"k","value":"v","messageId":` + tc.id + `}`))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, b, err := c.ws.Read(ctx)
		cancel()
		require.NoError(t, err, tc.id)
		var r struct {
			Code      float64
			MessageID json.RawMessage
			Error     string
		}
		require.NoError(t, json.Unmarshal(b, &r), "%s", b)
		require.Equal(t, tc.code, r.Code, "%s: %s", tc.id, b)
		require.Equal(t, tc.back, string(r.MessageID), "%s: %s", tc.id, b)
		if tc.code == 400 {
			require.Contains(t, r.Error, "messageId", "%s: %s", tc.id, b)
		}
	}
	// A message that does not decode as a whole still carries its
	// messageId back, written any way.
	c.writeRaw([]byte(`{"op":1,"key":5,"messageId":1e1}`))
	r := c.read()
	require.Equal(t, 400.0, r["code"], "%v", r)
	require.Equal(t, 10.0, r["messageId"], "%v", r)
	c.writeRaw([]byte(`{"op":1,"key":5,"messageId":0.5}`))
	r = c.read()
	require.Equal(t, 0.5, r["messageId"], "%v", r)
}

// TestWS_BadInput: every malformed request gets a 4xx reply, with its
// messageId when it had one, and the connection stays usable.
func TestWS_BadInput(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	for _, tc := range []struct {
		raw  string
		id   any
		code float64
	}{
		{`{"op":1,"key":`, nil, 400},
		{`not json`, nil, 400},
		{`{"op":1,"key":"a","messageId":7,}`, nil, 400},
		{`{"key":"a","messageId":8}`, 8.0, 400},
		{`{"op":99,"key":"a","messageId":9}`, 9.0, 400},
		{`{"op":1,"messageId":10}`, 10.0, 400},
		{`{"op":1,"key":"","messageId":11}`, 11.0, 400},
		{`{"op":2,"key":"a","messageId":12}`, 12.0, 400},
		{`{"op":2,"key":"a","value":"","messageId":13}`, 13.0, 400},
		{`{"op":2,"key":"a","value":{"x":1},"messageId":14}`, 14.0, 400},
		{`{"op":6,"key":"a","messageId":15}`, 15.0, 400},
		{`{"op":5,"key":"b","endKey":"a","messageId":16}`, 16.0, 400},
		{`{"op":5,"key":"a","limit":-1,"messageId":17}`, 17.0, 400},
		{`{"op":1,"key":"a","messageId":18} {"op":1}`, 18.0, 400},
		{`{"op":2,"key":"trail","value":"v","messageId":19}}`, 19.0, 400},
		{`{"op":2,"key":"trail","value":"v","messageId":20}]`, 20.0, 400},
		{`{"op":2,"key":"trail","value":"v","messageId":21} x`, 21.0, 400},
		{`[]`, nil, 400},
	} {
		c.writeRaw([]byte(tc.raw))
		r := c.read()
		require.Equal(t, tc.code, r["code"], tc.raw)
		require.Equal(t, tc.id, r["messageId"], tc.raw)
		require.NotEmpty(t, r["error"], tc.raw)
	}
	require.NoError(t, c.ws.Write(t.Context(), websocket.MessageBinary, []byte("bin")))
	require.Equal(t, 400.0, c.read()["code"])
	long := make([]byte, 2<<10)
	for i := range long {
		long[i] = 'k'
	}
	require.Equal(t, 413.0, c.call(m{"op": 2, "key": string(long), "value": "v"})["code"], "key over the limit")
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "still", "value": "usable"})["code"])
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "trail"})["code"], "a message with more after its value does not run")
}

// TestWS_TokenValidForItsWholeTTL: a token is valid for all of TokenTTL:
// its expiry, kept in whole seconds, is rounded up, and expiresAt says
// that instant, after which it is refused. Before, the expiry was
// truncated: a token issued at x.6 s with TokenTTL 300ms was refused 401
// as soon as it was issued, and one with 2 h half a second early.
func TestWS_TokenValidForItsWholeTTL(t *testing.T) {
	issued := time.Unix(1_800_000_000, 600_000_000) // x.6 s
	for _, tc := range []struct {
		ttl     time.Duration
		expires time.Time // the next whole second after issued + ttl
	}{
		{2 * time.Hour, time.Unix(1_800_000_000+7201, 0)},
		{300 * time.Millisecond, time.Unix(1_800_000_001, 0)},
		{400 * time.Millisecond, time.Unix(1_800_000_001, 0)}, // a whole second: itself
		{1500 * time.Millisecond, time.Unix(1_800_000_003, 0)},
	} {
		var clock atomic.Int64 // unix nanoseconds, read by the connections too
		clock.Store(issued.UnixNano())
		f := newFixture(t, &adapter.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }, TokenTTL: tc.ttl})
		code, body := f.rest("POST", "/token/websocket", apiKey, `{}`)
		require.Equal(t, http.StatusOK, code, "%v", body)
		require.Equal(t, tc.expires.UTC().Format(time.RFC3339), body["expiresAt"], "TTL %v", tc.ttl)
		tok := body["token"].(string)
		for _, at := range []struct {
			clock time.Time
			want  int
		}{
			{issued, http.StatusSwitchingProtocols},
			{issued.Add(tc.ttl - time.Nanosecond), http.StatusSwitchingProtocols},
			{tc.expires.Add(-time.Nanosecond), http.StatusSwitchingProtocols},
			{tc.expires, http.StatusUnauthorized},
		} {
			clock.Store(at.clock.UnixNano())
			ws, resp, err := f.dialRaw("token="+url.QueryEscape(tok), nil)
			if err == nil {
				ws.CloseNow()
			}
			require.Equal(t, at.want, resp.StatusCode, "TTL %v, at issued + %v", tc.ttl, at.clock.Sub(issued))
		}
	}
}

// TestIssueToken_NoMoreKeysThanAConnectionHolds: a token's subscribe
// keys and patterns are held by each of its connections, so a token with
// more than MaxConnPatterns of them is refused when asked for, not
// issued to have every connection made with it refused (429, then closed
// with 1008).
func TestIssueToken_NoMoreKeysThanAConnectionHolds(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxPatterns: 8, MaxConnPatterns: 4})
	tok, _, err := f.a.IssueToken(adapter.TokenConfig{SubscribeKeys: []string{"a", "b"}, SubscribePatterns: []string{"c:*", "d:*"}})
	require.NoError(t, err)
	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "a"})["code"])

	_, _, err = f.a.IssueToken(adapter.TokenConfig{SubscribeKeys: []string{"a", "b", "e"}, SubscribePatterns: []string{"c:*", "d:*"}})
	require.ErrorContains(t, err, "MaxConnPatterns")
	code, body := f.rest("POST", "/token/websocket", apiKey, `{"subscribeKeys":["a","b","e"],"subscribePatterns":["c:*","d:*"]}`)
	require.Equal(t, http.StatusBadRequest, code, "%v", body)
}

// TestWS_TokenExpiryByTheServingClock: a token is judged by the clock
// of the server it is used on, which may not be the one that issued it:
// servers sharing TokenSecret accept each other's tokens, and one whose
// clock is ahead refuses a token that much early.
func TestWS_TokenExpiryByTheServingClock(t *testing.T) {
	secret := []byte("a secret shared by the servers")
	issued := time.Unix(1_800_000_000, 0)
	clock := func(skew time.Duration) func() time.Time { return func() time.Time { return issued.Add(skew) } }
	issuer := newFixture(t, &adapter.Options{TokenSecret: secret, TokenTTL: time.Minute, Now: clock(0)})
	tok := url.QueryEscape(issuer.token(`{}`))
	for _, tc := range []struct {
		skew time.Duration
		want int
	}{
		{-time.Hour, http.StatusSwitchingProtocols},
		{59 * time.Second, http.StatusSwitchingProtocols},
		{time.Minute, http.StatusUnauthorized}, // ahead by the TTL: expired as it is issued
	} {
		f := newFixture(t, &adapter.Options{TokenSecret: secret, TokenTTL: time.Minute, Now: clock(tc.skew)})
		ws, resp, err := f.dialRaw("token="+tok, nil)
		if err == nil {
			ws.CloseNow()
		}
		require.Equal(t, tc.want, resp.StatusCode, "clock ahead by %v", tc.skew)
	}
}

// TestWS_TokenAccessPatternOf256Bytes: an accessPattern is at most 256
// bytes as given, as a subscribe pattern is, and an error about one
// quotes it as given. Before, it was measured with the two slashes the
// adapter adds to make it a regex: one of 255 or 256 bytes was refused
// with 400 "pattern longer than 256 bytes", quoting it with the slashes.
func TestWS_TokenAccessPatternOf256Bytes(t *testing.T) {
	f := newFixture(t, nil)
	p := "^" + strings.Repeat("a", 255) // 256 bytes
	code, body := f.rest("POST", "/token/websocket", apiKey, `{"subscribePatterns":["`+p+`"]}`)
	require.Equal(t, 200, code, "subscribe pattern: %v", body)
	for _, n := range []int{255, 256} {
		code, body = f.rest("POST", "/token/websocket", apiKey, `{"accessPattern":"`+p[:n]+`"}`)
		require.Equal(t, 200, code, "accessPattern of %d bytes: %v", n, body)
	}
	c := f.dial("token=" + url.QueryEscape(body["token"].(string)))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": p[1:], "value": "v"})["code"])
	require.Equal(t, 403.0, c.call(m{"op": 2, "key": "b", "value": "v"})["code"])

	code, body = f.rest("POST", "/token/websocket", apiKey, `{"accessPattern":"`+p+`a"}`)
	require.Equal(t, 400, code, "257 bytes: %v", body)
	require.Equal(t, fmt.Sprintf("accessPattern: pattern: pattern longer than 256 bytes at offset 256 in %q", p+"a"), body["error"])
	code, body = f.rest("POST", "/token/websocket", apiKey, `{"accessPattern":"^a("}`)
	require.Equal(t, 400, code, "%v", body)
	require.Contains(t, body["error"], `in "^a("`)
}

// TestWS_TokenOfMaxPatternsLongKeys: a token holds up to MaxPatterns
// keys and patterns of 256 bytes each, and whatever IssueToken issues
// within those limits, its connections accept. Before, a token was
// refused as malformed (403) past 64 KiB, which a token with MaxPatterns
// raised to 256, or with keys that JSON escapes, passes.
func TestWS_TokenOfMaxPatternsLongKeys(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxPatterns: 256})
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = fmt.Sprintf("room:%03d:", i) + strings.Repeat("k", 247) // 256 bytes
	}
	cfg, err := json.Marshal(adapter.TokenConfig{SubscribeKeys: keys})
	require.NoError(t, err)
	tok := f.token(string(cfg))
	require.Greater(t, len(tok), 64<<10)
	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": keys[0], "value": "v"})["code"])
	require.Equal(t, keys[0], c.note()["key"])

	// At the default MaxPatterns, 64 keys that JSON escapes (each & is
	// six bytes in the token's claims).
	f = newFixture(t, nil)
	for i := range 64 {
		keys[i] = fmt.Sprintf("%03d", i) + strings.Repeat("&", 253)
	}
	cfg, err = json.Marshal(adapter.TokenConfig{SubscribeKeys: keys[:64]})
	require.NoError(t, err)
	d := f.dbx("api_key=" + url.QueryEscape(f.token(string(cfg))))
	d.ok("string.set", obj{"key": keys[1], "value": "v"})
	require.Equal(t, keys[1], d.note()["key"])
}

// TestIssueToken_FitsTheHandshake: every token IssueToken issues, the
// largest included, fits in the handshake of a server with net/http's
// default limits; a config whose token would not is refused, by
// IssueToken and by POST /token/websocket alike. Before, a large
// MaxPatterns let it issue a token of 2 MiB, which the server itself
// refused with 431.
func TestIssueToken_FitsTheHandshake(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxPatterns: 1024, MaxConnPatterns: 1024})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("%04d", i) + strings.Repeat("&", 252) // 256 bytes, each & six in the claims
	}
	// The most keys whose token is issued, found by bisection.
	var largest string
	lo, hi := 1, len(keys)+1 // issued with lo keys; not with hi, or hi is past them all
	for lo+1 < hi {
		mid := (lo + hi) / 2
		tok, _, err := f.a.IssueToken(adapter.TokenConfig{SubscribeKeys: keys[:mid]})
		if err != nil {
			require.ErrorIs(t, err, adapter.ErrTokenTooLarge)
			hi = mid
			continue
		}
		lo, largest = mid, tok
	}
	require.Less(t, lo, len(keys), "a token of 1024 keys of 256 bytes would not fit")
	require.LessOrEqual(t, len(largest), adapter.MaxTokenSize)
	_, _, err := f.a.IssueToken(adapter.TokenConfig{SubscribeKeys: keys[:lo+1]})
	require.ErrorIs(t, err, adapter.ErrTokenTooLarge)

	c := f.dial("token=" + url.QueryEscape(largest))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": keys[lo-1], "value": "v"})["code"])
	require.Equal(t, keys[lo-1], c.note()["key"])

	cfg, err := json.Marshal(adapter.TokenConfig{SubscribeKeys: keys})
	require.NoError(t, err)
	code, body := f.rest("POST", "/token/websocket", apiKey, string(cfg))
	require.Equal(t, http.StatusBadRequest, code, "%v", body)
	require.Contains(t, body["error"], "token too large")
}

func TestWS_Auth(t *testing.T) {
	clock := time.Now()
	now := func() time.Time { return clock }
	f := newFixture(t, &adapter.Options{Now: now, TokenTTL: time.Minute})
	for q, want := range map[string]int{
		"":                                http.StatusUnauthorized,
		"apiKey=wrong":                    http.StatusForbidden,
		"token=garbage":                   http.StatusForbidden,
		"token=a.b":                       http.StatusForbidden,
		"apiKey=" + apiKey:                http.StatusSwitchingProtocols,
		"fromRevision=x&apiKey=" + apiKey: http.StatusBadRequest,
	} {
		ws, resp, err := f.dialRaw(q, nil)
		require.Equal(t, want, resp.StatusCode, q)
		if err == nil {
			ws.CloseNow()
		}
	}

	tok := f.token(`{"accessPattern":"^(product|user):"}`)
	tampered := []byte(tok)
	tampered[3] ^= 1
	_, resp, err := f.dialRaw("token="+url.QueryEscape(string(tampered)), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "tampered")

	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "product:1", "value": "p"})["code"])
	require.Equal(t, 403.0, c.call(m{"op": 2, "key": "order:1", "value": "o"})["code"])
	require.Equal(t, 403.0, c.call(m{"op": 1, "key": "order:1"})["code"])
	_, err = f.db.Set("order:2", "o", nil)
	require.NoError(t, err)
	_, err = f.db.Set("user:1", "u", nil)
	require.NoError(t, err)
	// A range's bounds need not be inside: it gives the keys between
	// them that are.
	for _, r := range []m{{"op": 5, "key": "a", "endKey": "zzz"}, {"op": 5, "key": "\x00"}, {"op": 5, "key": "product:", "endKey": "product;"}} {
		got := c.call(r)
		require.Equal(t, 200.0, got["code"], "%v", r)
		var keys []string
		for _, rec := range got["records"].([]any) {
			keys = append(keys, rec.(map[string]any)["key"].(string))
		}
		want := []string{"product:1", "user:1"}
		if r["endKey"] == "product;" {
			want = want[:1]
		}
		require.Equal(t, want, keys, "%v", r)
	}
	_, err = f.db.Get("order:1")
	require.Error(t, err, "nothing written outside the access pattern")

	// Expired: refused at the handshake, and a session whose token
	// expires is closed with 1008.
	short := f.token(`{}`)
	clock = clock.Add(2 * time.Minute)
	_, resp, err = f.dialRaw("token="+url.QueryEscape(short), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "expired")

	f2 := newFixture(t, &adapter.Options{TokenTTL: 1500 * time.Millisecond})
	c2 := f2.dial("token=" + url.QueryEscape(f2.token(`{}`)))
	require.Equal(t, websocket.StatusPolicyViolation, c2.closeStatus())

	// Token requests need the API key and sane patterns.
	code, _ := f.rest("POST", "/token/websocket", "", `{}`)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = f.rest("POST", "/token/websocket", "wrong", `{}`)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = f.rest("POST", "/token/websocket", apiKey, `{"subscribePatterns":["/(/"]}`)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = f.rest("POST", "/token/websocket", apiKey, `{"accessPattern":"("}`)
	require.Equal(t, http.StatusBadRequest, code)
	many := `{"subscribeKeys":[`
	for i := 0; i < 65; i++ {
		if i > 0 {
			many += ","
		}
		many += fmt.Sprintf(`"k%d"`, i)
	}
	code, _ = f.rest("POST", "/token/websocket", apiKey, many+`]}`)
	require.Equal(t, http.StatusBadRequest, code, "more patterns than MaxPatterns")
}

// TestRange_ReplyRevisionZero: a range of a store at revision 0 carries
// "revision": 0, the revision it was read at, as every range reply does;
// a get's 404 there still carries none. Before, revision 0 was left out
// of the range reply, and a page had to read a missing revision as 0.
func TestRange_ReplyRevisionZero(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 5, "key": "a", "endKey": "z"})
	require.Equal(t, 200.0, r["code"], "%v", r)
	require.Equal(t, 0.0, r["revision"], "range reply: %v", r)
	r = c.call(m{"op": 1, "key": "a"})
	require.Equal(t, 404.0, r["code"], "%v", r)
	require.NotContains(t, r, "revision", "an error reply: %v", r)
	require.NotContains(t, r, "atRevision", "%v", r)
}

// TestRangeRecordRevisions checks that a range reply gives each record the
// revision of its last change, over WebSocket and REST, and that a client
// can compare-and-swap on it: a key changed and changed back since the
// range was read is refused, though its value is the same again.
func TestRangeRecordRevisions(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	for _, k := range []string{"t:1", "t:2", "u:1"} {
		require.Equal(t, 200.0, c.call(m{"op": 2, "key": k, "value": "v"})["code"])
	}
	r := c.call(m{"op": 5, "key": "t:", "endKey": "t:~"})
	records := r["records"].([]any)
	require.Len(t, records, 2)
	for _, rec := range records {
		k := rec.(m)["key"].(string)
		it, err := f.db.Get(k)
		require.NoError(t, err)
		require.Equal(t, float64(it.Revision), rec.(m)["revision"], "%s: the revision of its last change", k)
	}
	old := records[1].(m)["revision"]
	require.Less(t, old, r["revision"], "t:2's own revision, not the range's")

	// REST gives the same records, without a revision of its own.
	code, got := f.rest("GET", "/records?startKey=t:&endKey=t:~", apiKey, "")
	require.Equal(t, 200, code)
	require.Equal(t, records, got["records"])
	require.NotContains(t, got, "revision")

	// t:2 changed and changed back: the same value, a newer revision.
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "t:2", "value": "w"})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "t:2", "value": "v"})["code"])
	require.Equal(t, 409.0, c.call(m{"op": 102, "key": "t:2", "value": "mine", "revision": old})["code"])
	r = c.call(m{"op": 5, "key": "t:2", "endKey": "t:2"})
	rec := r["records"].([]any)[0].(m)
	require.Equal(t, "v", rec["value"])
	require.Greater(t, rec["revision"], old)
	require.Equal(t, 200.0, c.call(m{"op": 102, "key": "t:2", "value": "mine", "revision": rec["revision"]})["code"])
}

// TestWS_TTL: a set or compare-and-swap with ttl (milliseconds) makes the
// key expire; a negative or oversized ttl is refused whatever the op, and
// a patch's.
func TestWS_TTL(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "k", "value": "v", "ttl": 60_000})["code"])
	it, err := f.db.Get("k")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Minute), it.ExpiresAt, 5*time.Second)
	r := c.call(m{"op": 102, "key": "k", "value": "w", "revision": it.Revision, "ttl": 3_600_000})
	require.Equal(t, 200.0, r["code"], "%v", r)
	it, err = f.db.Get("k")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), it.ExpiresAt, 5*time.Second)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "k", "value": "x"})["code"])
	it, err = f.db.Get("k")
	require.NoError(t, err)
	require.True(t, it.ExpiresAt.IsZero(), "a set without ttl never expires")
	for _, bad := range []m{
		{"op": 2, "key": "k", "value": "v", "ttl": -1},
		{"op": 2, "key": "k", "value": "v", "ttl": int64(1) << 62},
		{"op": 3, "key": "k", "value": "v", "ttl": 1000},
		{"op": 6, "key": "n", "value": 1, "ttl": -5},
		{"op": 4, "key": "k", "ttl": -1},
		{"op": 1, "key": "k", "ttl": int64(1) << 62},
		{"op": 5, "key": "a", "ttl": -1},
	} {
		require.Equal(t, 400.0, c.call(bad)["code"], "%v", bad)
	}
	require.Equal(t, "x", must(f.db.Get("k")).Value, "nothing written by a refused request")
	_, err = f.db.Get("n")
	require.ErrorIs(t, err, engine.ErrNotFound, "nor incremented")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestWS_SubscribeFromZero: a subscribe that gives fromRevision 0 gets
// every change after revision 0; one that leaves it out, only new ones.
func TestWS_SubscribeFromZero(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	must(f.db.Set("a", "1", nil))
	must(f.db.Set("a", "2", nil))
	r := c.call(m{"op": 100, "patterns": []string{"a"}, "fromRevision": 0})
	require.Equal(t, 200.0, r["code"], "%v", r)
	require.Equal(t, "1", c.note()["value"])
	require.Equal(t, "2", c.note()["value"])
	r = c.call(m{"op": 100, "patterns": []string{"a"}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	must(f.db.Set("a", "3", nil))
	got := []any{c.note()["value"], c.note()["value"]}
	require.Equal(t, []any{"3", "3"}, got, "once for each subscription, the new change only")
}

// TestWS_SubscribeFromAhead: a fromRevision past the store's newest is
// of another history (a server in memory that restarted, a store
// restored from an older backup): the changes after it are not here, so
// the subscribe is refused 410, as for a history compacted past it, and
// the client reads the state again. DBX says revision_compacted.
func TestWS_SubscribeFromAhead(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	must(f.db.Set("a", "1", nil))
	r := c.call(m{"op": 100, "patterns": []string{"a"}, "fromRevision": 5})
	require.Equal(t, 410.0, r["code"], "%v", r)
	require.Contains(t, r["error"], "the newest is 1")
	r = c.call(m{"op": 100, "patterns": []string{"a"}, "fromRevision": 1})
	require.Equal(t, 200.0, r["code"], "%v", r)
	d := f.dbx("api_key=" + apiKey)
	e := d.fails("revision_compacted", "subscribe", obj{"patterns": []string{"*"}, "fromRevision": 7})
	require.Contains(t, e["message"], "ahead")
}
