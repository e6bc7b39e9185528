package adapter_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/livekv/livekv/adapter"
	"github.com/stretchr/testify/require"
)

// TestOnRequest: every request answered, over WebSocket or REST, is
// reported once with its operation and code; 429s and bytes written are
// counted in Stats.
func TestOnRequest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := newFixture(t, &adapter.Options{RequestRate: 0.001, RequestBurst: 6, OnRequest: func(op string, code int) {
		mu.Lock()
		seen[fmt.Sprintf("%s %d", op, code)]++
		mu.Unlock()
	}})
	count := func(k string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[k]
	}

	code, _ := f.rest("POST", "/record", apiKey, `{"key":"a","value":"{\"x\":1}"}`)
	require.Equal(t, 200, code)
	f.rest("POST", "/record", apiKey, `{"key":"a","value":"{\"y\":2}","partialUpdate":true}`)
	f.rest("GET", "/record/a", apiKey, "")
	f.rest("GET", "/record/b", apiKey, "")
	f.rest("GET", "/record/a", "", "")
	f.rest("DELETE", "/record/a", apiKey, "")
	f.rest("GET", "/records?startKey=a", apiKey, "")
	f.rest("POST", "/record/atomic", apiKey, `{"key":"n","increment":2}`)
	f.rest("PUT", "/record", apiKey, `{}`)
	require.Equal(t, 1, count("set 200"))
	require.Equal(t, 1, count("patch 200"))
	require.Equal(t, 1, count("get 200"))
	require.Equal(t, 1, count("get 404"))
	require.Equal(t, 1, count("get 401"))
	require.Equal(t, 1, count("delete 200"))
	require.Equal(t, 1, count("range 200"))
	require.Equal(t, 1, count("increment 200"))
	require.Equal(t, 1, count("invalid 405"))
	restBytes := f.a.Stats().BytesOut
	require.Positive(t, restBytes)

	c := f.dial("apiKey=" + apiKey)
	require.EqualValues(t, 200, c.call(map[string]any{"op": 2, "key": "w", "value": "x"})["code"])
	require.EqualValues(t, 200, c.call(map[string]any{"op": 1, "key": "w"})["code"])
	require.EqualValues(t, 200, c.call(map[string]any{"op": 100, "patterns": []string{"w*"}})["code"])
	require.EqualValues(t, 400, c.call(map[string]any{"op": 77, "key": "w"})["code"])
	gets := 1
	for c.call(map[string]any{"op": 1, "key": "w"})["code"] != 429.0 {
		gets++
		require.Less(t, gets, 10, "no 429 past the burst")
	}
	require.Equal(t, 1, count("get 429"))
	require.Equal(t, 2, count("set 200"), "one REST, one WebSocket")
	require.Equal(t, 1+gets, count("get 200"), "REST's and WebSocket's")
	require.Equal(t, 1, count("subscribe 200"))
	require.Equal(t, 1, count("invalid 400"))
	st := f.a.Stats()
	require.Equal(t, int64(1), st.Throttled)
	require.Greater(t, st.BytesOut, restBytes, "WebSocket messages count")
}

// TestOnRequest_DBX: DBX requests are reported as dbx.METHOD with the
// HPKV code of their answer.
func TestOnRequest_DBX(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := newFixture(t, &adapter.Options{MaxExaminedKeys: 2, OnRequest: func(op string, code int) {
		mu.Lock()
		seen[fmt.Sprintf("%s %d", op, code)]++
		mu.Unlock()
	}})
	c := f.dbx("api_key=" + apiKey)
	c.ok("string.set", obj{"key": "k", "value": "v"})
	c.ok("string.set", obj{"key": "k2", "value": "v"})
	c.ok("string.set", obj{"key": "k3", "value": "v"})
	// Too much work for one request is the client's to narrow: 413, as a
	// body too large, not a server error.
	c.fails("work_limit_exceeded", "keys.count", obj{"pattern": "*"})
	c.ok("string.get", obj{"key": "k"})
	c.fails("not_found", "string.get", obj{"key": "none"})
	c.fails("invalid_request", "no.such.method", obj{})
	// Bad params of a known method count under the method, in either
	// spelling; a message that names none is "invalid".
	c.fails("invalid_value", "INCRBY", obj{"key": "n"})
	c.fails("invalid_key", "string.incrby", obj{"amount": 1})
	c.fails("invalid_key", "batch", obj{"operations": []obj{{"method": "string.get"}}})
	c.writeRaw([]byte(`{"id":"x","params":{}}`))
	require.Equal(t, "invalid_request", c.reply("x")["error"].(map[string]any)["code"])
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"dbx.string.set 200": 3, "dbx.keys.count 413": 1, "dbx.string.get 200": 1, "dbx.string.get 404": 1, "invalid 400": 2,
		"dbx.string.incrby 400": 2, "dbx.batch 400": 1}, seen)
}
