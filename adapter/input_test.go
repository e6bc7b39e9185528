package adapter_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// TestWS_InvalidUTF8: a text frame that is not UTF-8 closes the connection
// with 1007, as RFC 6455 asks, and stores nothing; a JSON escape of an
// unpaired surrogate gets a 400 reply. Two different keys never become
// one.
func TestWS_InvalidUTF8(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	c.writeRaw([]byte(`{"op":2,"key":"bad` + "\xff" + `utf","value":"v","messageId":1}`))
	require.Equal(t, websocket.StatusInvalidFramePayloadData, c.closeStatus())

	c = f.dial("apiKey=" + apiKey)
	for _, raw := range []string{
		`{"op":2,"key":"bad\udcffutf","value":"v","messageId":2}`,
		`{"op":2,"key":"bad\ud800utf","value":"v","messageId":2}`,
		`{"op":2,"key":"bad\ud800","value":"v","messageId":2}`,
		`{"op":2,"key":"k","value":"v\udc00","messageId":2}`,
		`{"op":5,"key":"a","endKey":"z\ud800\ud800","messageId":2}`,
		`{"op":100,"patterns":["a\udfff*"],"messageId":2}`,
	} {
		c.writeRaw([]byte(raw))
		r := c.read()
		require.Equal(t, 400.0, r["code"], raw)
		require.Equal(t, 2.0, r["messageId"], raw)
		require.Contains(t, r["error"], "UTF-8", raw)
	}
	// Paired surrogates, escaped backslashes and U+FFFD itself are text.
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "emoji:\U0001F600", "value": "v"})["code"])
	c.writeRaw([]byte(`{"op":2,"key":"esc\\ud800","value":"\ud83d\ude00","messageId":50}`))
	require.Equal(t, 200.0, c.read()["code"])
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "repl:\uFFFD", "value": "v"})["code"])
	it, err := f.db.Get(`esc\ud800`)
	require.NoError(t, err)
	require.Equal(t, "\U0001F600", it.Value)

	for it, err := range enginetest.Items(f.db.Range("", "", nil)) {
		require.NoError(t, err)
		require.True(t, utf8.ValidString(it.Key))
		if it.Key != "repl:\uFFFD" {
			require.NotContains(t, it.Key, "\uFFFD", "a replaced byte")
			require.NotContains(t, it.Value, "\uFFFD", "a replaced byte")
		}
	}
}

// TestREST_InvalidUTF8: REST refuses what is not UTF-8, in bodies, paths
// and queries, with 400.
func TestREST_InvalidUTF8(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/record", `{"key":"bad` + "\xff" + `utf","value":"v"}`},
		{"POST", "/record", `{"key":"k","value":"bad` + "\xfe" + `"}`},
		{"POST", "/record", `{"key":"bad\udcffutf","value":"v"}`},
		{"POST", "/record/atomic", `{"key":"n\ud800","increment":1}`},
		{"POST", "/token/websocket", `{"subscribeKeys":["a\ud800"]}`},
		{"POST", "/token/websocket", `{"accessPattern":"^a` + "\xff" + `"}`},
		{"GET", "/record/bad%FFutf", ""},
		{"DELETE", "/record/bad%FEutf", ""},
		{"GET", "/records?startKey=a%FF&endKey=z", ""},
		{"GET", "/records?startKey=a&endKey=z%FF", ""},
	} {
		code, got := f.rest(c.method, c.path, apiKey, c.body)
		require.Equal(t, http.StatusBadRequest, code, "%s %s %s: %v", c.method, c.path, c.body, got)
		require.Contains(t, got["error"], "UTF-8", "%s %s", c.method, c.path)
	}
	n := 0
	for _, err := range enginetest.Items(f.db.Range("", "", nil)) {
		require.NoError(t, err)
		n++
	}
	require.Zero(t, n, "nothing stored")
}

// TestREST_TrailingSlash: the key of /record/{key} is everything after
// /record/, URL-decoded, a final slash included: for GET and DELETE,
// /record/ names the empty key, which gets 400.
func TestREST_TrailingSlash(t *testing.T) {
	f := newFixture(t, nil)
	code, _ := f.rest("POST", "/record", apiKey, `{"key":"x","value":"plain"}`)
	require.Equal(t, http.StatusOK, code)
	code, got := f.rest("GET", "/record/x/", apiKey, "")
	require.Equal(t, http.StatusNotFound, code, "x/ is not x: %v", got)
	code, _ = f.rest("POST", "/record", apiKey, `{"key":"x/","value":"slash"}`)
	require.Equal(t, http.StatusOK, code)
	code, got = f.rest("GET", "/record/x/", apiKey, "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"key": "x/", "value": "slash"}, got)
	code, got = f.rest("GET", "/record/"+url.PathEscape("a b")+"%2F", apiKey, "")
	require.Equal(t, http.StatusNotFound, code, "%v", got)
	code, _ = f.rest("DELETE", "/record/x/", apiKey, "")
	require.Equal(t, http.StatusOK, code)
	it, err := f.db.Get("x")
	require.NoError(t, err, "x itself is left")
	require.Equal(t, "plain", it.Value)
	// The routes without a key still take a final slash.
	code, _ = f.rest("POST", "/record/", apiKey, `{"key":"y","value":"v"}`)
	require.Equal(t, http.StatusOK, code)
	code, got = f.rest("GET", "/records/?startKey=x&endKey="+strings.Repeat("z", 3), apiKey, "")
	require.Equal(t, http.StatusOK, code, "%v", got)
	for _, method := range []string{"GET", "DELETE"} {
		code, got = f.rest(method, "/record/", apiKey, "")
		require.Equal(t, http.StatusBadRequest, code, "%s /record/: %v", method, got)
		require.Equal(t, "key is required", got["error"])
	}
}

// TestWS_AccessPatternWholeKey: an access pattern anchored with $ admits
// no key with a final newline, neither for requests nor notifications.
func TestWS_AccessPatternWholeKey(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(`{"accessPattern":"^user:[0-9]+$","subscribePatterns":["user:*"]}`)
	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "user:1", "value": "v"})["code"])
	require.Equal(t, "user:1", c.note()["key"])
	require.Equal(t, 403.0, c.call(m{"op": 2, "key": "user:1\n", "value": "v"})["code"])
	require.Equal(t, 403.0, c.call(m{"op": 1, "key": "user:1\n"})["code"])
	_, err := f.db.Set("user:2\n", "secret", nil)
	require.NoError(t, err)
	_, err = f.db.Set("user:3", "v", nil)
	require.NoError(t, err)
	require.Equal(t, "user:3", c.note()["key"], "no notification for user:2\\n")
	r := c.call(m{"op": 5, "key": "user:0", "endKey": "user:9"})
	require.Equal(t, 2.0, r["count"], "%v", r)
}

// TestWS_ErrorQuotesLittleOfItsInput: an error reply quotes at most a
// little of what the client sent, however large. Before, a bad increment
// and a pattern too long were quoted whole, escaped: a message of 1 MiB of
// U+0080 got a reply of 3.5 MiB, so that a client made the server build
// and send three and a half times what it sent, per request in flight.
func TestWS_ErrorQuotesLittleOfItsInput(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	big := strings.Repeat("\u0080", 1<<19) // 1 MiB, which %q writes as 3 MiB
	for _, req := range []m{
		{"op": 6, "key": "n", "value": big},
		{"op": 100, "patterns": []string{big}},
	} {
		c.next++
		req["messageId"] = c.next
		c.write(req)
		_, b, err := c.ws.Read(t.Context())
		require.NoError(t, err)
		require.Less(t, len(b), 4<<10, "op %v: %.200s", req["op"], b)
		require.Contains(t, string(b), `"code":400`)
	}
	code, body := f.rest("POST", "/token/websocket", apiKey, `{"accessPattern":"`+big+`"}`)
	require.Equal(t, 400, code)
	require.Less(t, len(body["error"].(string)), 4<<10, "%.200s", body["error"])
}
