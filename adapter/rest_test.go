package adapter_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

func TestREST(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxMessageSize: 4096})
	type call struct {
		method, path, key, body string
		code                    int
		want                    map[string]any
	}
	for _, c := range []call{
		{"GET", "/record/a", "", "", 401, nil},
		{"GET", "/record/a", "wrong", "", 403, nil},
		{"GET", "/record/a", apiKey, "", 404, map[string]any{"error": "Record not found"}},
		{"POST", "/record", apiKey, `{"key":"a","value":"1"}`, 200, map[string]any{"success": true, "message": "Record inserted/updated successfully"}},
		{"GET", "/record/a", apiKey, "", 200, map[string]any{"key": "a", "value": "1"}},
		{"POST", "/record", apiKey, `{"key":"j","value":{"x":1}}`, 400, nil},
		{"POST", "/record", apiKey, `{"key":"j","value":"{\"x\":1,\"y\":2}"}`, 200, nil},
		{"POST", "/record", apiKey, `{"key":"j","value":"{\"y\":null}","partialUpdate":true}`, 200, nil},
		{"GET", "/record/j", apiKey, "", 200, map[string]any{"key": "j", "value": `{"x":1}`}},
		{"POST", "/record", apiKey, `{"key":"","value":"v"}`, 400, nil},
		{"POST", "/record", apiKey, `{"key":"k","value":""}`, 400, nil},
		{"POST", "/record", apiKey, `{"key":"k"`, 400, nil},
		// More after the body's value is malformed JSON: nothing runs.
		{"POST", "/record", apiKey, `{"key":"t","value":"v"}}`, 400, nil},
		{"POST", "/record", apiKey, `{"key":"t","value":"v"} garbage`, 400, nil},
		{"POST", "/record/atomic", apiKey, `{"key":"t","increment":1}]`, 400, nil},
		{"POST", "/token/websocket", apiKey, `{} {}`, 400, nil},
		{"GET", "/record/t", apiKey, "", 404, nil},
		{"POST", "/record", apiKey, `{"key":"k","value":"` + strings.Repeat("v", 5000) + `"}`, 413, nil},
		{"PUT", "/record", apiKey, `{}`, 405, nil},
		{"POST", "/record/atomic", apiKey, `{"key":"n","increment":5}`, 200, map[string]any{"success": true, "newValue": 5.0}},
		{"POST", "/record/atomic", apiKey, `{"key":"n","increment":-7}`, 200, map[string]any{"success": true, "newValue": -2.0}},
		{"POST", "/record/atomic", apiKey, `{"key":"j","increment":1}`, 400, nil},
		{"POST", "/record/atomic", apiKey, `{"key":"n","increment":"x"}`, 400, nil},
		{"POST", "/record/atomic/", apiKey, `{"key":"n","increment":2}`, 200, map[string]any{"success": true, "newValue": 0.0}},
		// For GET and DELETE, record/atomic is a key like any other.
		{"POST", "/record", apiKey, `{"key":"atomic","value":"x"}`, 200, nil},
		{"POST", "/record", apiKey, `{"key":"atomic/","value":"y"}`, 200, nil},
		{"GET", "/record/atomic", apiKey, "", 200, map[string]any{"key": "atomic", "value": "x"}},
		{"GET", "/record/atomic/", apiKey, "", 200, map[string]any{"key": "atomic/", "value": "y"}},
		{"DELETE", "/record/atomic/", apiKey, "", 200, nil},
		{"DELETE", "/record/atomic", apiKey, "", 200, nil},
		{"GET", "/record/atomic", apiKey, "", 404, nil},
		{"PUT", "/record/atomic", apiKey, `{}`, 405, nil},
		{"POST", "/record", apiKey, `{"key":"path/with space","value":"p"}`, 200, nil},
		{"GET", "/record/" + url.PathEscape("path/with space"), apiKey, "", 200, map[string]any{"key": "path/with space", "value": "p"}},
		// Each record with the revision of its last change: a was the
		// first write, j's patch the third.
		{"GET", "/records?startKey=a&endKey=j", apiKey, "", 200, map[string]any{"records": []any{
			map[string]any{"key": "a", "value": "1", "revision": 1.0}, map[string]any{"key": "j", "value": `{"x":1}`, "revision": 3.0}},
			"count": 2.0, "truncated": false}},
		{"GET", "/records?startKey=a&endKey=z&limit=1", apiKey, "", 200, map[string]any{"records": []any{
			map[string]any{"key": "a", "value": "1", "revision": 1.0}}, "count": 1.0, "truncated": true}},
		{"GET", "/records?startKey=a&limit=x", apiKey, "", 400, nil},
		{"DELETE", "/record/a", apiKey, "", 200, map[string]any{"success": true, "message": "Record deleted successfully"}},
		{"DELETE", "/record/a", apiKey, "", 404, nil},
		{"GET", "/nothing", apiKey, "", 404, map[string]any{"error": "no such endpoint"}},
	} {
		code, got := f.rest(c.method, c.path, c.key, c.body)
		require.Equal(t, c.code, code, "%s %s %s: %v", c.method, c.path, c.body, got)
		if c.want != nil {
			require.Equal(t, c.want, got, "%s %s", c.method, c.path)
		}
		if code >= 400 {
			require.NotEmpty(t, got["error"], "%s %s", c.method, c.path)
		}
	}
}

// TestMount: the adapter works at any mount point, and the token a REST
// call issues opens a WebSocket there.
func TestMount(t *testing.T) {
	f := newFixture(t, &adapter.Options{TokenTTL: time.Hour})
	code, m := f.rest("POST", "/token/websocket", apiKey, `{"subscribeKeys":["a"]}`)
	require.Equal(t, http.StatusOK, code)
	require.NotEmpty(t, m["expiresAt"])
	c := f.dial("token=" + url.QueryEscape(m["token"].(string)))
	require.Equal(t, 404.0, c.call(map[string]any{"op": 1, "key": "a"})["code"])
	code, _ = f.rest("GET", "/token/websocket", apiKey, "")
	require.Equal(t, http.StatusMethodNotAllowed, code)
}

// TestREST_RevisionHeaderZero: on a store at revision 0, a range and a
// get's 404 carry X-Livekv-Revision: 0, the revision they reflect; a
// reply that reflects none (a 400) carries no header. Before, the header
// was left out at 0, and a client could not tell "read at 0" from "no
// revision".
func TestREST_RevisionHeaderZero(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		path   string
		code   int
		header []string
	}{
		{"/records?startKey=a", 200, []string{"0"}},
		{"/record/a", 404, []string{"0"}},
		{"/records?startKey=a&limit=x", 400, nil},
	} {
		req, err := http.NewRequest("GET", f.base+c.path, nil)
		require.NoError(t, err)
		req.Header.Set("x-api-key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, c.code, resp.StatusCode, c.path)
		require.Equal(t, c.header, resp.Header.Values(adapter.RevisionHeader), c.path)
	}
}
