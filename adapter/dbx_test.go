package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// dbxClient speaks the DBX dialect: requests with string ids, replies
// matched by id, notifications kept aside (in notes) and heartbeats
// counted.
type dbxClient struct {
	*client
	beats int
}

func (f *fixture) dbxDialRaw(query string, h http.Header) (*websocket.Conn, *http.Response, error) {
	return f.dialPath("/dbx/ws", query, h)
}

func (f *fixture) dbx(query string) *dbxClient {
	f.t.Helper()
	ws, resp, err := f.dbxDialRaw(query, nil)
	require.NoError(f.t, err, "status %v", resp)
	ws.SetReadLimit(64 << 20)
	f.t.Cleanup(func() { ws.CloseNow() })
	return &dbxClient{client: &client{t: f.t, ws: ws}}
}

// reply reads until the message with this id, keeping notifications.
func (c *dbxClient) reply(id any) map[string]any {
	c.t.Helper()
	for {
		m, err := c.tryRead(5 * time.Second)
		require.NoError(c.t, err)
		switch m["type"] {
		case "notification":
			c.notes = append(c.notes, m)
			continue
		case "heartbeat":
			c.beats++
			continue
		}
		require.Equal(c.t, id, m["id"], "reply %v", m)
		ts, ok := m["timestamp"].(string)
		require.True(c.t, ok, "timestamp in %v", m)
		_, err = time.Parse(time.RFC3339, ts)
		require.NoError(c.t, err)
		return m
	}
}

// call sends a request and returns its whole reply.
func (c *dbxClient) call(method string, params any) map[string]any {
	c.t.Helper()
	c.next++
	id := fmt.Sprintf("msg_%d", c.next)
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params, "timestamp": time.Now().UTC().Format(time.RFC3339)})
	require.NoError(c.t, err)
	c.writeRaw(b)
	return c.reply(id)
}

// ok calls and returns the result, failing on an error reply.
func (c *dbxClient) ok(method string, params any) map[string]any {
	c.t.Helper()
	m := c.call(method, params)
	require.Nil(c.t, m["error"], "%s %v: %v", method, params, m)
	res, isMap := m["result"].(map[string]any)
	require.True(c.t, isMap, "%v", m)
	return res
}

// fails calls and returns the error, which must have code.
func (c *dbxClient) fails(code, method string, params any) map[string]any {
	c.t.Helper()
	m := c.call(method, params)
	e, isMap := m["error"].(map[string]any)
	require.True(c.t, isMap, "%s %v: want error %s, got %v", method, params, code, m)
	require.Equal(c.t, code, e["code"], "%v", e)
	require.NotEmpty(c.t, e["message"])
	require.Nil(c.t, m["result"])
	return e
}

func (c *dbxClient) note() map[string]any {
	c.t.Helper()
	for len(c.notes) == 0 {
		m, err := c.tryRead(5 * time.Second)
		require.NoError(c.t, err)
		if m["type"] == "notification" {
			c.notes = append(c.notes, m)
		}
	}
	n := c.notes[0]
	c.notes = c.notes[1:]
	return n
}

type obj = map[string]any

func TestDBX_StringMethods(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey + "&client_id=tests")

	require.Equal(t, obj{"pong": true}, c.ok("ping", nil))
	res := c.ok("string.set", obj{"key": "k", "value": "hello"})
	require.Equal(t, true, res["success"])
	require.Equal(t, "k", res["key"])
	require.EqualValues(t, f.db.Revision(), res["revision"])
	require.Equal(t, obj{"value": "hello", "ttl": -1.0}, c.ok("string.get", obj{"key": "k"}))
	require.Equal(t, obj{"exists": true}, c.ok("string.exists", obj{"key": "k"}))
	require.Equal(t, obj{"exists": false}, c.ok("string.exists", obj{"key": "nope"}))
	require.Equal(t, obj{"length": 5.0}, c.ok("string.strlen", obj{"key": "k"}))

	// append keeps the expiry; ttl counts down from it
	c.ok("string.set", obj{"key": "t", "value": "a", "ttl": 100})
	require.EqualValues(t, 2, c.ok("string.append", obj{"key": "t", "value": "b"})["length"])
	got := c.ok("string.get", obj{"key": "t"})
	require.Equal(t, "ab", got["value"])
	require.InDelta(t, 100, got["ttl"], 1)
	require.InDelta(t, 100, c.ok("string.ttl", obj{"key": "t"})["ttl"], 1)
	require.EqualValues(t, 3, c.ok("string.append", obj{"key": "fresh", "value": "new"})["length"])

	// expire, persist, ttl of a missing key
	require.Equal(t, obj{"ttl": -1.0}, c.ok("string.ttl", obj{"key": "k"}))
	require.Equal(t, obj{"ttl": -2.0}, c.ok("string.ttl", obj{"key": "nope"}))
	require.Equal(t, true, c.ok("string.expire", obj{"key": "k", "ttl": 50})["success"])
	require.InDelta(t, 50, c.ok("string.ttl", obj{"key": "k"})["ttl"], 1)
	it, err := f.db.Get("k")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(50*time.Second), it.ExpiresAt, 2*time.Second)
	require.Equal(t, true, c.ok("string.persist", obj{"key": "k"})["success"])
	require.Equal(t, obj{"ttl": -1.0}, c.ok("string.ttl", obj{"key": "k"}))
	require.Equal(t, obj{"success": false}, c.ok("string.persist", obj{"key": "k"}))
	require.Equal(t, obj{"success": false}, c.ok("string.expire", obj{"key": "nope", "ttl": 5}))

	// setnx
	require.Equal(t, false, c.ok("string.setnx", obj{"key": "k", "value": "other"})["created"])
	require.Equal(t, true, c.ok("string.setnx", obj{"key": "n", "value": "first"})["created"])
	it, err = f.db.Get("k")
	require.NoError(t, err)
	require.Equal(t, "hello", it.Value)

	// counters
	require.Equal(t, 1.0, c.ok("string.incr", obj{"key": "c"})["value"])
	require.Equal(t, 11.0, c.ok("string.incrby", obj{"key": "c", "amount": 10})["value"])
	require.Equal(t, 10.0, c.ok("string.decr", obj{"key": "c"})["value"])
	require.Equal(t, 3.0, c.ok("string.decrby", obj{"key": "c", "amount": 7})["value"])

	// mset, mget (a missing key is null)
	c.ok("string.mset", obj{"pairs": obj{"m:1": "one", "m:2": "two"}})
	require.Equal(t, []any{"one", nil, "two"}, c.ok("string.mget", obj{"keys": []string{"m:1", "m:x", "m:2"}})["values"])

	// delete, twice
	require.Equal(t, true, c.ok("string.delete", obj{"key": "k"})["deleted"])
	require.Equal(t, false, c.ok("string.delete", obj{"key": "k"})["deleted"])
	e := c.fails("not_found", "string.get", obj{"key": "k"})
	require.Equal(t, "Key 'k' not found", e["message"])
}

func TestDBX_UpperCaseSpellings(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	c.ok("SET", obj{"key": "u", "value": "John Doe", "expire": 3600})
	require.InDelta(t, 3600, c.ok("GET", obj{"key": "u"})["ttl"], 1)
	require.Equal(t, true, c.ok("SETNX", obj{"key": "v", "value": "x"})["created"])
	c.ok("MSET", obj{"pairs": obj{"a": "1", "b": "2"}})
	require.Equal(t, []any{"1", "2"}, c.ok("MGET", obj{"keys": []string{"a", "b"}})["values"])
	require.Equal(t, 2.0, c.ok("INCR", obj{"key": "a"})["value"])
	require.Equal(t, 7.0, c.ok("INCRBY", obj{"key": "a", "amount": 5})["value"])
	require.Equal(t, 6.0, c.ok("DECR", obj{"key": "a"})["value"])
	require.Equal(t, 3.0, c.ok("DECRBY", obj{"key": "a", "amount": 3})["value"])
	require.Equal(t, 3.0, c.ok("APPEND", obj{"key": "b", "value": "34"})["length"])
	require.Equal(t, 3.0, c.ok("STRLEN", obj{"key": "b"})["length"])
	require.Equal(t, true, c.ok("EXISTS", obj{"key": "b"})["exists"])
	require.Equal(t, true, c.ok("EXPIRE", obj{"key": "b", "ttl": 9})["success"])
	require.InDelta(t, 9, c.ok("TTL", obj{"key": "b"})["ttl"], 1)
	require.Equal(t, true, c.ok("PERSIST", obj{"key": "b"})["success"])
	require.Equal(t, true, c.ok("DEL", obj{"key": "b"})["deleted"])
	require.Equal(t, obj{"pong": true}, c.ok("PING", nil))
	c.fails("invalid_request", "get", obj{"key": "a"}) // lower-case bare names are not DBX's
}

func TestDBX_IDEchoed(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	for _, id := range []string{`"msg_1"`, `7`, `1.5`, `{"n":[1,2]}`, `["a"]`, `true`, `null`} {
		c.writeRaw([]byte(`{"id":` + id + `,"method":"ping","timestamp":"2024-01-15T10:30:00Z"}`))
		var want any
		require.NoError(t, json.Unmarshal([]byte(id), &want))
		m := c.reply(want)
		require.Equal(t, obj{"pong": true}, m["result"])
		if id == `null` {
			require.Contains(t, m, "id")
		}
	}
	// no id: none in the reply
	c.writeRaw([]byte(`{"method":"ping"}`))
	m, err := c.tryRead(5 * time.Second)
	require.NoError(t, err)
	require.NotContains(t, m, "id")
	// an error still carries the id, even when the rest does not decode
	c.writeRaw([]byte(`{"id":"bad","method":"string.get","params":{"key":1}}`))
	require.Equal(t, "invalid_key", c.reply("bad")["error"].(map[string]any)["code"])
	c.writeRaw([]byte(`{"id":42,"method":"string.set","params":{"key":"k","value":{"x":1}}}`))
	require.Equal(t, "invalid_value", c.reply(42.0)["error"].(map[string]any)["code"])
	c.writeRaw([]byte(`{"id":[1],"method":`))
	m, err = c.tryRead(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "invalid_request", m["error"].(map[string]any)["code"])
	c.writeRaw([]byte(`{"id":"x","method":"string.get","params":{"key":"a\ud800"}}`))
	require.Equal(t, "invalid_request", c.reply("x")["error"].(map[string]any)["code"])
}

func TestDBX_BatchOneRevision(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	c.ok("subscribe", obj{"patterns": []string{"b:*"}})
	c.ok("string.set", obj{"key": "b:n", "value": "5"})
	before := f.db.Revision()
	res := c.ok("batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "b:1", "value": "one"}},
		{"method": "string.get", "params": obj{"key": "b:1"}},
		{"method": "INCRBY", "params": obj{"key": "b:n", "amount": 2}},
		{"method": "string.delete", "params": obj{"key": "b:1"}},
		{"method": "string.exists", "params": obj{"key": "b:1"}},
	}})
	require.Equal(t, before+1, f.db.Revision(), "one transaction, one revision")
	results := res["results"].([]any)
	require.Len(t, results, 5)
	require.Equal(t, "one", results[1].(map[string]any)["value"], "a read sees the batch's own writes")
	require.Equal(t, 7.0, results[2].(map[string]any)["value"])
	require.Equal(t, false, results[4].(map[string]any)["exists"])
	for _, i := range []int{0, 2, 3} {
		require.EqualValues(t, before+1, results[i].(map[string]any)["revision"])
	}
	// the notifications: the single set, then the batch's at one
	// revision, a key's writes in it as one change
	require.Equal(t, "b:n", c.note()["key"])
	got := map[string]map[string]any{}
	for range 2 {
		n := c.note()
		require.EqualValues(t, before+1, n["revision"])
		got[n["key"].(string)] = n
	}
	require.Equal(t, true, got["b:1"]["deleted"])
	require.Equal(t, "7", got["b:n"]["value"])
	// a batch of reads only commits nothing
	c.ok("batch", obj{"operations": []obj{{"method": "GET", "params": obj{"key": "b:n"}}, {"method": "ping"}}})
	require.Equal(t, before+1, f.db.Revision())
}

func TestDBX_FailingBatchChangesNothing(t *testing.T) {
	q := &recordingQuota{}
	f := newFixture(t, &adapter.Options{Quota: q})
	c := f.dbx("api_key=" + apiKey)
	c.ok("string.set", obj{"key": "a", "value": "old"})
	c.ok("string.set", obj{"key": "word", "value": "not a number"})
	before, charged := f.db.Revision(), q.total()
	e := c.fails("type_mismatch", "batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "a", "value": "new"}},
		{"method": "string.set", "params": obj{"key": "z", "value": "created"}},
		{"method": "string.incr", "params": obj{"key": "word"}},
		{"method": "string.set", "params": obj{"key": "y", "value": "never"}},
	}})
	require.EqualValues(t, 2, e["operation"])
	require.Contains(t, e["message"], "operations[2] (string.incr)")
	require.Equal(t, before, f.db.Revision())
	it, err := f.db.Get("a")
	require.NoError(t, err)
	require.Equal(t, "old", it.Value)
	for _, k := range []string{"z", "y"} {
		_, err = f.db.Get(k)
		require.ErrorIs(t, err, engine.ErrNotFound)
	}
	require.Equal(t, charged, q.total(), "what the quota counted for the rolled-back writes is given back")

	// a bad operation is refused before anything runs, by its index
	e = c.fails("invalid_ttl", "batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "a", "value": "x"}},
		{"method": "string.set", "params": obj{"key": "a", "value": "x", "ttl": 0}},
	}})
	require.EqualValues(t, 1, e["operation"])
	c.fails("invalid_request", "batch", obj{"operations": []obj{{"method": "subscribe", "params": obj{"patterns": []string{"*"}}}}})
	c.fails("invalid_request", "batch", obj{"operations": []obj{}})
	require.Equal(t, before, f.db.Revision())
}

// recordingQuota accepts every write and sums what it is charged.
type recordingQuota struct {
	bytes, keys int64
}

func (q *recordingQuota) Charge(key string, bytes, keys int64) error {
	q.bytes += bytes // Charge is called one write transaction at a time
	q.keys += keys
	return nil
}

func (q *recordingQuota) total() [2]int64 { return [2]int64{q.bytes, q.keys} }

func TestDBX_ErrorCodes(t *testing.T) {
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, MaxKeySize: 16, MaxValueSize: 64}, nil)
	c := f.dbx("api_key=" + apiKey)
	c.fails("not_found", "string.get", obj{"key": "missing"})
	c.fails("invalid_key", "string.get", obj{"key": ""})
	c.fails("invalid_key", "string.get", obj{})
	c.fails("invalid_key", "string.set", obj{"key": strings.Repeat("k", 17), "value": "v"})
	c.fails("invalid_request", "string.mget", obj{"keys": []string{}})
	c.fails("invalid_value", "string.set", obj{"key": "k"})
	c.fails("invalid_value", "string.set", obj{"key": "k", "value": []int{1}})
	c.fails("invalid_value", "string.set", obj{"key": "k", "value": strings.Repeat("v", 65)})
	c.fails("invalid_value", "string.incrby", obj{"key": "k"})
	c.fails("invalid_value", "string.incrby", obj{"key": "k", "amount": 1.5})
	for _, ttl := range []any{0, -1, "60", 1.5, int64(1) << 40} {
		c.fails("invalid_ttl", "string.set", obj{"key": "k", "value": "v", "ttl": ttl})
	}
	c.fails("invalid_ttl", "string.expire", obj{"key": "k"})
	c.ok("string.set", obj{"key": "s", "value": "text"})
	c.fails("type_mismatch", "string.incr", obj{"key": "s"})
	c.ok("string.set", obj{"key": "big", "value": "9223372036854775807"})
	c.fails("invalid_value", "string.incr", obj{"key": "big"})
	c.fails("invalid_request", "hash.get", obj{"key": "k"})
	c.fails("invalid_request", "keys.scan", obj{"pattern": "/(/"})
	c.fails("not_found", "unsubscribe", obj{"subscriptionId": 99})
	c.writeRaw([]byte(`{"id":"hb","type":"heartbeat"}`)) // a client's heartbeat gets no answer
	c.writeRaw([]byte(`not json`))
	m, err := c.tryRead(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "invalid_request", m["error"].(map[string]any)["code"])
	require.NotContains(t, m, "id")
	// More after the message's value is malformed JSON too: nothing runs.
	for _, raw := range []string{
		`{"id":"t1","method":"string.set","params":{"key":"t","value":"v"}}]`,
		`{"id":"t2","method":"string.set","params":{"key":"t","value":"v"}}}`,
		`{"id":"t3","method":"string.set","params":{"key":"t","value":"v"}} {"id":"t4"}`,
	} {
		var head struct{ ID string }
		require.NoError(t, json.NewDecoder(strings.NewReader(raw)).Decode(&head))
		c.writeRaw([]byte(raw))
		r := c.reply(head.ID)
		e, _ := r["error"].(map[string]any)
		require.Equal(t, "invalid_request", e["code"], "%s: %v", raw, r)
	}
	_, err = f.db.Get("t")
	require.ErrorIs(t, err, engine.ErrNotFound)

	// the handshake: no key, a wrong one, an expired or tampered token, an unknown version
	for _, tc := range []struct {
		query, code string
		status      int
	}{
		{"", "unauthorized", 401},
		{"api_key=wrong", "forbidden", 403},
		{"api_key=abc.def", "forbidden", 403},
		{"api_key=" + apiKey + "&version=2.0", "unsupported_version", 400},
		{"api_key=" + apiKey + "&client_id=" + strings.Repeat("x", 300), "invalid_request", 400},
	} {
		_, resp, err := f.dbxDialRaw(tc.query, nil)
		require.Error(t, err, tc.query)
		require.Equal(t, tc.status, resp.StatusCode, tc.query)
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Equal(t, tc.code, body["error"], "%s: %v", tc.query, body)
		require.EqualValues(t, tc.status, body["status"])
	}
	for _, v := range []string{"1.0", "1"} {
		f.dbx("api_key="+apiKey+"&version="+v).ok("ping", nil)
	}
}

// TestDBX_TooLargeValueOfAKeyThatSaysKeyOf: a value over the DB's limit
// is invalid_value whatever its key holds. Before, the code was told from
// the engine's message by whether it held ": key of ", which the quoted
// key in a value's message may: the value of "my: key of x" was
// invalid_key.
func TestDBX_TooLargeValueOfAKeyThatSaysKeyOf(t *testing.T) {
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, MaxKeySize: 16, MaxValueSize: 8}, nil)
	c := f.dbx("api_key=" + apiKey)
	big := strings.Repeat("v", 9)
	c.fails("invalid_value", "string.set", obj{"key": "my: key of x", "value": big})
	c.fails("invalid_value", "string.mset", obj{"pairs": obj{"my: key of x": big}})
	c.ok("string.set", obj{"key": "my: key of x", "value": "vvvv"})
	c.fails("invalid_value", "string.append", obj{"key": "my: key of x", "value": "vvvvv"})
	c.fails("invalid_key", "string.set", obj{"key": strings.Repeat("k", 17), "value": "v"})
	c.fails("invalid_key", "string.get", obj{"key": strings.Repeat("k", 17)})
}

func TestDBX_RateAndQuota(t *testing.T) {
	q := &failingQuota{}
	f := newFixture(t, &adapter.Options{RequestRate: 0.001, RequestBurst: 2, Quota: q})
	c := f.dbx("api_key=" + apiKey)
	c.fails("quota_exceeded", "string.set", obj{"key": "k", "value": "v"})
	c.ok("ping", nil)
	c.fails("rate_limit_exceeded", "ping", nil)
	// A message that does not decode keeps its id over the rate too.
	c.fails("rate_limit_exceeded", "no.such.method", nil)
	c.writeRaw([]byte(`{"id":"bad","method":5}`))
	require.Equal(t, "rate_limit_exceeded", c.reply("bad")["error"].(map[string]any)["code"])
	_, err := f.db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

type failingQuota struct{}

func (failingQuota) Charge(key string, bytes, keys int64) error {
	if bytes > 0 {
		return fmt.Errorf("%w: test", adapter.ErrQuotaExceeded)
	}
	return nil
}

func TestDBX_TokenScope(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(`{"subscribePatterns":["room:1:*"],"accessPattern":"^room:1:"}`)
	api := f.dbx("api_key=" + apiKey)
	api.ok("string.mset", obj{"pairs": obj{"room:1:a": "a", "room:1:b": "b", "room:2:a": "other"}})
	c := f.dbx("api_key=" + tok)
	require.Equal(t, "a", c.ok("string.get", obj{"key": "room:1:a"})["value"])
	c.fails("forbidden", "string.get", obj{"key": "room:2:a"})
	c.fails("forbidden", "string.mget", obj{"keys": []string{"room:1:a", "room:2:a"}})
	e := c.fails("forbidden", "batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "room:1:c", "value": "c"}},
		{"method": "string.set", "params": obj{"key": "room:2:c", "value": "c"}},
	}})
	require.EqualValues(t, 1, e["operation"])
	_, err := f.db.Get("room:1:c")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Equal(t, []any{"room:1:a", "room:1:b"}, c.ok("keys.scan", obj{"pattern": "room:*"})["keys"])
	require.Equal(t, 2.0, c.ok("keys.count", obj{"pattern": "*"})["count"])
	// the token's own subscription notifies of its keys only
	api.ok("string.set", obj{"key": "room:2:x", "value": "no"})
	api.ok("string.set", obj{"key": "room:1:x", "value": "yes"})
	n := c.note()
	require.Equal(t, "room:1:x", n["key"])
	require.Equal(t, "yes", n["value"])
}

func TestDBX_Scan(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	pairs := obj{}
	for i := range 25 {
		pairs[fmt.Sprintf("user:%02d", i)] = "u"
		pairs[fmt.Sprintf("order:%02d", i)] = "o"
	}
	c.ok("string.mset", obj{"pairs": pairs})
	var all []any
	cursor := ""
	for range 10 {
		res := c.ok("keys.scan", obj{"pattern": "user:*", "cursor": cursor, "count": 10})
		all = append(all, res["keys"].([]any)...)
		if res["done"] == true {
			require.Equal(t, "", res["cursor"])
			break
		}
		cursor = res["cursor"].(string)
		require.Equal(t, all[len(all)-1], cursor, "cursor = the last key")
	}
	require.Len(t, all, 25)
	require.Equal(t, "user:00", all[0])
	require.Equal(t, "user:24", all[24])
	require.Equal(t, 25.0, c.ok("keys.count", obj{"pattern": "order:*"})["count"])
	require.Equal(t, 20.0, c.ok("keys.count", obj{"pattern": "*:0?"})["count"]) // a glob: user:0x and order:0x
}

// TestDBX_ScanCursorNamesNoForeignKey: a token's scan reads only the keys
// between its access pattern's bounds, and a page that stops on a key the
// token may not read (one inside the bounds that the pattern refuses,
// past ScanTimeBudget) has a sealed cursor, which names no key: no reply of the scan tells of a key outside
// the token's access, and paging from the cursors gives every allowed key
// once. A sealed cursor tampered with is refused; the API key's cursors
// are keys, sealed only when a key starts as a sealed cursor does.
func TestDBX_ScanCursorNamesNoForeignKey(t *testing.T) {
	for _, o := range []*adapter.Options{nil, {ScanTimeBudget: time.Nanosecond}} {
		f := newFixture(t, o)
		api := f.dbx("api_key=" + apiKey)
		pairs := obj{"admin:password=hunter2": "x", "~sealed:x": "x", "~sealed:": "x"}
		for i := range 40 {
			pairs[fmt.Sprintf("admin:%02d", i)] = "x"
			pairs[fmt.Sprintf("room:x:secret%02d", i)] = "x"
			pairs[fmt.Sprintf("zoo:secret%02d", i)] = "x"
			pairs[fmt.Sprintf("room:%d:a", i%4)] = "v"
			pairs[fmt.Sprintf("room:1:b%02d", i)] = "v"
		}
		for i := range 4 {
			pairs[fmt.Sprintf("room:3:x:%02d", i)] = "v" // allowed by ^room:\d+:
		}
		api.ok("string.mset", obj{"pairs": pairs})

		// page scans with c and returns the keys, checking that no
		// reply names a key outside allowed.
		page := func(c *dbxClient, pattern string, count int, allowed func(string) bool) (keys []string, sealed string) {
			t.Helper()
			cursor := ""
			for pages := 0; ; pages++ {
				require.Less(t, pages, 500)
				res := c.ok("keys.scan", obj{"pattern": pattern, "cursor": cursor, "count": count})
				for _, k := range res["keys"].([]any) {
					require.True(t, allowed(k.(string)), "scan gives %q: %v", k, res)
					keys = append(keys, k.(string))
				}
				cursor = res["cursor"].(string)
				if res["done"] == true {
					require.Equal(t, "", cursor)
					return keys, sealed
				}
				if strings.HasPrefix(cursor, "~sealed:") {
					sealed = cursor
					require.NotContains(t, cursor, "secret", "%v", res)
					require.NotContains(t, cursor, "admin", "%v", res)
				} else {
					require.True(t, allowed(cursor), "the cursor names %q, outside the token's access: %v", cursor, res)
				}
			}
		}
		want := func(allowed func(string) bool) []string {
			var keys []string
			for k := range pairs {
				if allowed(k) {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			return keys
		}
		for _, tc := range []struct {
			access  string
			allowed func(string) bool
		}{
			{`^room:1:`, func(k string) bool { return strings.HasPrefix(k, "room:1:") }},
			{`^room:\d+:`, func(k string) bool {
				return strings.HasPrefix(k, "room:") && k[5] >= '0' && k[5] <= '9' && strings.Contains(k[5:], ":")
			}},
		} {
			c := f.dbx("api_key=" + f.token(`{"accessPattern":`+strconv.Quote(tc.access)+`}`))
			var sealed string
			for _, count := range []int{1, 3, 1000} {
				keys, s := page(c, "*", count, tc.allowed)
				require.Equal(t, want(tc.allowed), keys, "%s, count %d: every allowed key once, in order", tc.access, count)
				if s != "" {
					sealed = s
				}
			}
			keys, _ := page(c, "room:*:*", 2, tc.allowed)
			require.Equal(t, want(tc.allowed), keys, "%s", tc.access)
			if tc.access == `^room:\d+:` && o != nil {
				require.NotEmpty(t, sealed, "a page stopped on room:x:secret and got a sealed cursor")
				// A sealed cursor goes on after the key it seals.
				res := c.ok("keys.scan", obj{"cursor": sealed, "count": 1000})
				require.Equal(t, true, res["done"])
				tampered := []byte(sealed)
				tampered[len(tampered)-3] ^= 1
				for _, bad := range []string{string(tampered), "~sealed:", "~sealed:AAAA", sealed + "\n", "~sealed:" + strings.Repeat("A", 64)} {
					e := c.fails("invalid_request", "keys.scan", obj{"cursor": bad})
					require.Contains(t, e["message"], "cursor")
				}
			}
		}

		// The API key reads every key: its cursors are keys, but for one
		// that starts as a sealed cursor does, which is sealed.
		keys, sealed := page(api, "*", 1, func(string) bool { return true })
		require.Equal(t, want(func(string) bool { return true }), keys)
		require.NotEmpty(t, sealed)
		require.NotContains(t, []string{"~sealed:", "~sealed:x"}, sealed)
	}
}

// TestDBX_ScanPatternRunsOnlyOnReadableKeys: a token's scan looks at its
// access before running the client's pattern on a key, so a regex that
// runs out of time on a key the token may not read (one inside its access
// pattern's bounds) tells nothing of it: the scan goes on as past any key
// it may not read. On a key it may read, it fails with service_unavailable.
func TestDBX_ScanPatternRunsOnlyOnReadableKeys(t *testing.T) {
	f := newFixture(t, nil)
	api := f.dbx("api_key=" + apiKey)
	hostile := strings.Repeat("a", 28) + "!"
	api.ok("string.mset", obj{"pairs": obj{"room:x:" + hostile: "secret", "room:1:b": "v", "admin:" + hostile: "secret"}})
	c := f.dbx("api_key=" + f.token(`{"accessPattern":"^room:[0-9]+:"}`))
	for _, p := range []string{`/^room:x:(a+)+$/`, `/^(room:x:)?(a+)+$/`, `/:(a+)+$/`} {
		res := c.ok("keys.scan", obj{"pattern": p})
		require.Equal(t, obj{"keys": []any{}, "cursor": "", "done": true}, res, "%s", p)
		require.Equal(t, obj{"count": 0.0}, c.ok("keys.count", obj{"pattern": p}), "%s", p)
	}
	api.ok("string.set", obj{"key": "room:2:" + hostile, "value": "v"})
	c.fails("service_unavailable", "keys.scan", obj{"pattern": `/:(a+)+$/`})
	c.fails("service_unavailable", "keys.count", obj{"pattern": `/:(a+)+$/`})
}

func TestDBX_SubscriptionResume(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	sub := c.ok("subscribe", obj{"patterns": []string{"doc:*"}})
	id := sub["subscriptionId"]
	w := f.dbx("api_key=" + apiKey)
	for i := range 5 {
		w.ok("string.set", obj{"key": fmt.Sprintf("doc:%d", i), "value": fmt.Sprint(i)})
	}
	w.ok("string.delete", obj{"key": "doc:0"})
	w.ok("string.set", obj{"key": "other", "value": "x"})
	var last float64
	for i := range 3 {
		n := c.note()
		require.Equal(t, id, n["subscriptionId"])
		require.Equal(t, fmt.Sprintf("doc:%d", i), n["key"])
		require.Greater(t, n["revision"], last)
		last = n["revision"].(float64)
		_, err := time.Parse(time.RFC3339, n["timestamp"].(string))
		require.NoError(t, err)
	}
	c.ws.Close(websocket.StatusNormalClosure, "")
	w.ok("string.set", obj{"key": "doc:9", "value": "while away"})

	// reconnect, resume from the last revision seen: the rest, no gap, no repeat
	c = f.dbx("api_key=" + apiKey)
	c.ok("subscribe", obj{"patterns": []string{"doc:*"}, "fromRevision": last})
	for _, want := range []string{"doc:3", "doc:4", "doc:0", "doc:9"} {
		n := c.note()
		require.Equal(t, want, n["key"])
		require.Greater(t, n["revision"], last)
		last = n["revision"].(float64)
		if want == "doc:0" {
			require.Equal(t, true, n["deleted"])
			require.NotContains(t, n, "value")
		}
	}
	// unsubscribe stops them
	c.ok("unsubscribe", obj{"subscriptionId": 1})
	w.ok("string.set", obj{"key": "doc:10", "value": "x"})
	c.ok("ping", nil)
	require.Empty(t, c.notes)
}

// A client that subscribed to a new DB (reply revision 0) and lost its
// connection before the first change resumes with fromRevision 0 and gets
// the changes made meanwhile.
func TestDBX_ResumeFromZero(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	r := c.ok("subscribe", obj{"patterns": []string{"a"}})
	require.Equal(t, 0.0, r["revision"])
	c.ws.Close(websocket.StatusNormalClosure, "")
	must(f.db.Set("a", "while away", nil))
	c = f.dbx("api_key=" + apiKey)
	c.ok("subscribe", obj{"patterns": []string{"a"}, "fromRevision": 0})
	n := c.note()
	require.Equal(t, "a", n["key"])
	require.Equal(t, 1.0, n["revision"])
}

func TestDBX_ResumeTooOld(t *testing.T) {
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, HistoryEvents: 4}, nil)
	c := f.dbx("api_key=" + apiKey)
	for i := range 20 {
		c.ok("string.set", obj{"key": fmt.Sprintf("k%d", i), "value": "v"})
	}
	e := c.fails("revision_compacted", "subscribe", obj{"patterns": []string{"*"}, "fromRevision": 1})
	require.Greater(t, e["oldest"], 1.0)
}

func TestDBX_Heartbeats(t *testing.T) {
	f := newFixture(t, &adapter.Options{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 100 * time.Millisecond})
	// a client that sends heartbeats stays, and receives the server's
	c := f.dbx("api_key=" + apiKey)
	msgs := make(chan map[string]any, 100)
	go func() {
		defer close(msgs)
		for {
			m, err := c.tryRead(5 * time.Second)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	for end := time.Now().Add(600 * time.Millisecond); time.Now().Before(end); {
		c.writeRaw([]byte(`{"type":"heartbeat","timestamp":"` + time.Now().UTC().Format(time.RFC3339) + `"}`))
		time.Sleep(30 * time.Millisecond)
	}
	c.writeRaw([]byte(`{"id":"last","method":"ping"}`))
	beats := 0
	for m := range msgs {
		if m["id"] == "last" {
			require.Equal(t, obj{"pong": true}, m["result"])
			break
		}
		require.Equal(t, "heartbeat", m["type"], "%v", m)
		_, err := time.Parse(time.RFC3339, m["timestamp"].(string))
		require.NoError(t, err)
		beats++
	}
	require.GreaterOrEqual(t, beats, 5, "about one every 50ms for 600ms")
	c.ws.Close(websocket.StatusNormalClosure, "")
	for range msgs {
	}

	// a silent one is closed once it missed its heartbeat and the timeout
	// after it. The server's clock starts once the dial reached it: ours
	// starts before the dial, so that it never runs behind the server's.
	start := time.Now()
	s := f.dbx("api_key=" + apiKey)
	require.Equal(t, websocket.StatusPolicyViolation, s.closeStatus())
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	require.EqualValues(t, 1, f.a.Stats().DeadPeers)
}

// TestDBX_SlowSenderOfLargeMessage: a client that sends a large message
// slowly, for longer than HeartbeatInterval + HeartbeatTimeout, can send
// no heartbeat meanwhile; the bytes of its message, arriving all along,
// say that it is not silent.
func TestDBX_SlowSenderOfLargeMessage(t *testing.T) {
	f := newFixture(t, &adapter.Options{HeartbeatInterval: 200 * time.Millisecond, HeartbeatTimeout: 200 * time.Millisecond})
	c := &dbxClient{client: f.dialSlowPath("/dbx/ws", "api_key="+apiKey, 256<<10)}
	value := strings.Repeat("x", 512<<10) // about 2 s to send
	c.ok("string.set", obj{"key": "big", "value": value})
	c.ok("string.set", obj{"key": "small", "value": "v"})
	require.Zero(t, f.a.Stats().DeadPeers)
}

func TestDBX_Limits(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxMessageSize: 4 << 10, MaxReplyBytes: 1 << 10, MaxRangeLimit: 10, DefaultRangeLimit: 5,
		MaxSubscriptions: 1})
	c := f.dbx("api_key=" + apiKey)
	big := strings.Repeat("v", 800)
	c.ok("string.mset", obj{"pairs": obj{"a": big, "b": big}})
	require.Equal(t, big, c.ok("string.get", obj{"key": "a"})["value"], "one value alone always comes")
	c.fails("invalid_request", "string.mget", obj{"keys": []string{"a", "b"}})
	c.fails("invalid_request", "batch", obj{"operations": []obj{
		{"method": "GET", "params": obj{"key": "a"}}, {"method": "GET", "params": obj{"key": "b"}}}})
	keys := make([]string, 11)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	c.fails("invalid_request", "string.mget", obj{"keys": keys})
	ops := make([]obj, 11)
	for i := range ops {
		ops[i] = obj{"method": "ping"}
	}
	c.fails("invalid_request", "batch", obj{"operations": ops})
	require.Len(t, c.ok("keys.scan", obj{"count": 100})["keys"], 2)
	c.ok("subscribe", obj{"patterns": []string{"a"}})
	c.fails("rate_limit_exceeded", "subscribe", obj{"patterns": []string{"b"}})

	// invalid UTF-8 closes with 1007; an oversized message with 1009
	c.writeRaw([]byte("{\"id\":1,\"method\":\"string.get\",\"params\":{\"key\":\"\xff\"}}"))
	require.Equal(t, websocket.StatusInvalidFramePayloadData, c.closeStatus())
	c = f.dbx("api_key=" + apiKey)
	c.writeRaw([]byte(`{"id":1,"method":"string.set","params":{"key":"k","value":"` + strings.Repeat("x", 5<<10) + `"}}`))
	require.Equal(t, websocket.StatusMessageTooBig, c.closeStatus())

	// a foreign page is refused at the handshake
	_, resp, err := f.dbxDialRaw("api_key="+apiKey, http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}

// TestDBX_SlowClient: the HPKV dialect's send queue, byte budget and
// slow-client timeout hold for DBX connections: a subscriber that stops
// reading is closed, holding no more than MaxQueuedBytes, and others go
// on.
func TestDBX_SlowClient(t *testing.T) {
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, HistoryBytes: 256 << 20},
		&adapter.Options{SendQueue: 64, MaxQueuedBytes: 64 << 10, SlowClientTimeout: 200 * time.Millisecond})
	stalled := f.dbx("api_key=" + apiKey)
	stalled.ok("subscribe", obj{"patterns": []string{"*"}})
	other := f.dbx("api_key=" + apiKey)
	f.writeUntilSlowClosed()
	require.LessOrEqual(t, f.a.Stats().PeakQueuedBytes, int64(64<<10))
	other.ok("string.set", obj{"key": "k", "value": "v"})
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 1 }, 10*time.Second, 10*time.Millisecond)
}

// TestDBX_BatchOverQuota: a batch whose third write the quota refuses
// writes nothing, and the quota's count stays exact.
func TestDBX_BatchOverQuota(t *testing.T) {
	// The quota counts what an empty DB holds; the fixture's is empty too.
	empty, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	q, err := adapter.NewPrefixQuota(empty, adapter.QuotaLimit{Prefix: "q:", MaxKeys: 2, MaxBytes: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, empty.Close())
	f := newFixture(t, &adapter.Options{Quota: q})
	c := f.dbx("api_key=" + apiKey)
	e := c.fails("quota_exceeded", "batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "q:1", "value": "a"}},
		{"method": "string.set", "params": obj{"key": "q:2", "value": "b"}},
		{"method": "string.set", "params": obj{"key": "q:3", "value": "c"}},
	}})
	require.EqualValues(t, 2, e["operation"])
	require.Equal(t, adapter.QuotaUsage{}, q.Usage("q:"))
	c.fails("quota_exceeded", "string.mset", obj{"pairs": obj{"q:1": "a", "q:2": "b", "q:3": "c"}})
	require.Equal(t, adapter.QuotaUsage{}, q.Usage("q:"))
	require.Equal(t, 0.0, c.ok("keys.count", obj{"pattern": "q:*"})["count"])
	c.ok("string.mset", obj{"pairs": obj{"q:1": "a", "q:2": "b"}})
	require.Equal(t, adapter.QuotaUsage{Keys: 2, Bytes: 8}, q.Usage("q:"))
}

// TestDBX_TokenExpiry: an expired token is refused at the handshake with
// 401 unauthorized, and a connection whose token expires is closed with
// 1008, as on /ws.
func TestDBX_TokenExpiry(t *testing.T) {
	clock := time.Now()
	f := newFixture(t, &adapter.Options{Now: func() time.Time { return clock }, TokenTTL: time.Minute})
	tok := f.token(`{}`)
	clock = clock.Add(2 * time.Minute)
	_, resp, err := f.dbxDialRaw("api_key="+url.QueryEscape(tok), nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(t, "unauthorized", body["error"])

	f2 := newFixture(t, &adapter.Options{TokenTTL: 1500 * time.Millisecond})
	c := f2.dbx("api_key=" + url.QueryEscape(f2.token(`{}`)))
	c.ok("ping", nil)
	require.Equal(t, websocket.StatusPolicyViolation, c.closeStatus())
}

// TestDBX_Shutdown: DBX connections drain like HPKV ones: requests under
// way are answered, later ones get service_unavailable, the connection
// closes with 1001.
func TestDBX_Shutdown(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	const n = 200
	for i := range n {
		c.writeRaw(fmt.Appendf(nil, `{"id":%d,"method":"INCR","params":{"key":"n"}}`, i))
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.a.Shutdown(ctx)
	}()
	incremented := 0
	for {
		r, err := c.tryRead(10 * time.Second)
		if err != nil {
			require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err))
			break
		}
		if e, isErr := r["error"].(map[string]any); isErr {
			require.Equal(t, "service_unavailable", e["code"], "%v", r)
			continue
		}
		incremented++
	}
	require.NoError(t, <-done)
	require.Equal(t, fmt.Sprint(incremented), f.counter("n"), "every increment that ran was answered, and only those")
}

// TestDBX_ExaminedKeys: keys.count and keys.scan read every key in the
// range a pattern allows, so one request, a batch included, examines at
// most MaxExaminedKeys keys: past it the request fails and changes
// nothing, whatever the client asks.
func TestDBX_ExaminedKeys(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	const n = 100_001 // one past the default
	_, err := f.db.Update(func(tx *engine.Tx) error {
		for i := range n {
			if _, err := tx.Set(fmt.Sprintf("k:%06d", i), "", nil); err != nil {
				return err
			}
		}
		_, err := tx.Set("x:1", "", nil)
		return err
	})
	require.NoError(t, err)
	e := c.fails("work_limit_exceeded", "keys.count", obj{"pattern": "*"})
	require.Contains(t, e["message"], "MaxExaminedKeys")
	c.fails("work_limit_exceeded", "keys.count", obj{"pattern": "*:1"}) // a suffix has no prefix to bound its range
	require.Equal(t, 1.0, c.ok("keys.count", obj{"pattern": "x:*"})["count"], "a prefix bounds the range")
	require.Equal(t, 1000.0, c.ok("keys.count", obj{"pattern": "k:000*"})["count"])

	f = newFixture(t, &adapter.Options{MaxExaminedKeys: 50, MaxRangeLimit: 60, DefaultRangeLimit: 10})
	c = f.dbx("api_key=" + apiKey)
	for i := range 50 {
		_, err := f.db.Set(fmt.Sprintf("k:%02d", i), "v", nil)
		require.NoError(t, err)
	}
	require.Equal(t, 50.0, c.ok("keys.count", nil)["count"], "exactly MaxExaminedKeys keys")
	c.ok("string.set", obj{"key": "k:50", "value": "v"})
	c.fails("work_limit_exceeded", "keys.count", nil)
	// Reads count too: mget of 50 keys fits, of 51 does not, nor 51 gets.
	keys := make([]string, 51)
	gets := make([]obj, 51)
	for i := range keys {
		keys[i] = fmt.Sprintf("k:%02d", i)
		gets[i] = obj{"method": "string.exists", "params": obj{"key": keys[i]}}
	}
	c.ok("batch", obj{"operations": []obj{{"method": "string.mget", "params": obj{"keys": keys[:10]}}, {"method": "keys.count", "params": obj{"pattern": "k:1*"}}}})
	e = c.fails("work_limit_exceeded", "batch", obj{"operations": gets})
	require.EqualValues(t, 50, e["operation"])
	// Five full pages of scans fit; the sixth, in the same request, does
	// not, and the batch's write is not kept.
	ops := []obj{{"method": "string.set", "params": obj{"key": "new", "value": "v"}}}
	for i := range 6 {
		ops = append(ops, obj{"method": "keys.scan", "params": obj{"cursor": fmt.Sprintf("k:%02d", i*10-1), "count": 10}})
	}
	e = c.fails("work_limit_exceeded", "batch", obj{"operations": ops})
	require.EqualValues(t, 6, e["operation"])
	require.Equal(t, obj{"exists": false}, c.ok("string.exists", obj{"key": "new"}))
	require.Len(t, c.ok("batch", obj{"operations": ops[:6]})["results"], 6)
}

// TestDBX_WriteBytes: a write that rewrites a whole value (expire,
// append) costs a few bytes of message and a whole value of memory and
// log, so the writes of one request put at most MaxWriteBytes (16 MiB) in
// the log: a batch past it fails and changes nothing, rather than
// building a log record the engine would refuse.
func TestDBX_WriteBytes(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	big := strings.Repeat("v", 1<<20-64)
	for i := range 17 {
		_, err := f.db.Set(fmt.Sprintf("big:%02d", i), big, nil)
		require.NoError(t, err)
	}
	before := f.db.Revision()
	var expires, appends []obj
	for i := range 17 {
		expires = append(expires, obj{"method": "string.expire", "params": obj{"key": fmt.Sprintf("big:%02d", i), "ttl": 60}})
		appends = append(appends, obj{"method": "string.append", "params": obj{"key": "big:00", "value": "x"}})
	}
	for _, ops := range [][]obj{expires, appends} {
		e := c.fails("work_limit_exceeded", "batch", obj{"operations": ops})
		require.EqualValues(t, 16, e["operation"], "%v", e)
		require.Contains(t, e["message"], "MaxWriteBytes")
		require.Equal(t, before, f.db.Revision(), "the batch changed nothing")
	}
	require.Len(t, c.ok("batch", obj{"operations": expires[:16]})["results"], 16)
	require.Len(t, c.ok("batch", obj{"operations": appends[:16]})["results"], 16)
	require.Equal(t, float64(1<<20-64+16), c.ok("string.strlen", obj{"key": "big:00"})["length"])
}

// TestDBX_TTLByTheDBClock: TTLs are read and kept by the DB's clock
// (engine.Options.Now), not the wall clock: string.get and string.ttl
// count down with it, and string.append keeps the expiry exactly.
func TestDBX_TTLByTheDBClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, Now: func() time.Time { return time.Unix(0, now.Load()) }}, nil)
	c := f.dbx("api_key=" + apiKey)
	c.ok("string.set", obj{"key": "k", "value": "a", "ttl": 100})
	require.Equal(t, obj{"value": "a", "ttl": 100.0}, c.ok("string.get", obj{"key": "k"}))
	now.Add(int64(40 * time.Second))
	c.ok("string.append", obj{"key": "k", "value": "b"})
	require.Equal(t, obj{"ttl": 60.0}, c.ok("string.ttl", obj{"key": "k"}))
	now.Add(int64(59*time.Second + 500*time.Millisecond))
	require.Equal(t, obj{"value": "ab", "ttl": 1.0}, c.ok("string.get", obj{"key": "k"}), "rounded up")
	now.Add(int64(500 * time.Millisecond))
	require.Equal(t, obj{"ttl": -2.0}, c.ok("string.ttl", obj{"key": "k"}), "expired at 100 s, as set")
}

// TestDBX_ScanTimeBudget: a regex pattern may take its MatchTimeout on
// every key, so the scans and counts of one request stop after
// ScanTimeBudget: a scan returns its page so far, having examined at least
// 16 keys, and paging goes on from its cursor; a count fails.
func TestDBX_ScanTimeBudget(t *testing.T) {
	f := newFixture(t, &adapter.Options{ScanTimeBudget: time.Nanosecond})
	c := f.dbx("api_key=" + apiKey)
	for i := range 40 {
		_, err := f.db.Set(fmt.Sprintf("k:%02d", i), "v", nil)
		require.NoError(t, err)
	}
	var all []any
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3)
		res := c.ok("keys.scan", obj{"pattern": "/^k:/", "cursor": cursor, "count": 100})
		all = append(all, res["keys"].([]any)...)
		if res["done"] == true {
			break
		}
		require.Len(t, res["keys"], 16)
		cursor = res["cursor"].(string)
	}
	require.Len(t, all, 40)
	e := c.fails("work_limit_exceeded", "keys.count", obj{"pattern": "/^k:/"})
	require.Contains(t, e["message"], "ScanTimeBudget")
	require.Equal(t, 10.0, c.ok("keys.count", obj{"pattern": "k:3*"})["count"], "a count that examines under 16 keys")
}

// TestDBX_BatchRevisionOnlyOnWrites: in a batch that commits, only the
// write operations that changed something carry its revision; a delete
// of a missing key, a setnx of an existing one, an expire of a missing
// one changed nothing and have none, as when they run alone.
func TestDBX_BatchRevisionOnlyOnWrites(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	res := c.ok("batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "a", "value": "1"}},
		{"method": "string.delete", "params": obj{"key": "missing"}},
		{"method": "string.setnx", "params": obj{"key": "a", "value": "2"}},
		{"method": "string.expire", "params": obj{"key": "missing", "ttl": 5}},
		{"method": "string.persist", "params": obj{"key": "a"}},
		{"method": "string.setnx", "params": obj{"key": "b", "value": "2"}},
	}})["results"].([]any)
	rev := f.db.Revision()
	require.Equal(t, obj{"success": true, "key": "a", "revision": float64(rev)}, res[0])
	require.Equal(t, obj{"success": true, "deleted": false}, res[1])
	require.Equal(t, obj{"success": true, "created": false}, res[2])
	require.Equal(t, obj{"success": false}, res[3])
	require.Equal(t, obj{"success": false}, res[4])
	require.Equal(t, obj{"success": true, "created": true, "revision": float64(rev)}, res[5])
	require.Equal(t, obj{"success": true, "deleted": false}, c.ok("string.delete", obj{"key": "missing"}))
}

// TestDBX_HeartbeatsWhileBusy: a client whose requests hold every slot
// (MaxInFlight) waits for the server, which then reads nothing from it,
// its heartbeats included; that wait is not the client's silence, and the
// connection stays open until its requests are answered.
func TestDBX_HeartbeatsWhileBusy(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxInFlight: 1, HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 50 * time.Millisecond})
	c := f.dbx("api_key=" + apiKey)
	release := holdWriter(t, f.db)
	c.writeRaw([]byte(`{"id":"w","method":"string.set","params":{"key":"k","value":"v"}}`))
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		c.writeRaw([]byte(`{"type":"heartbeat"}`))
		time.Sleep(20 * time.Millisecond)
	}
	release()
	require.Nil(t, c.reply("w")["error"])
	require.Equal(t, obj{"pong": true}, c.ok("ping", nil))
	require.Zero(t, f.a.Stats().DeadPeers)
}

// TestDBX_BatchOfScansInTheByteBudget: the keys a scan returns count,
// with the values read, toward the request's reply bytes: a batch of
// scans, each within MaxReplyBytes alone, must not build a reply past
// the connection's byte budget. A scan alone still pages.
func TestDBX_BatchOfScansInTheByteBudget(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxReplyBytes: 64 << 10, MaxQueuedBytes: 256 << 10})
	c := f.dbx("api_key=" + apiKey)
	for i := range 200 {
		_, err := f.db.Set(fmt.Sprintf("k:%03d:%s", i, strings.Repeat("<", 500)), "v", nil) // 6 bytes a '<' in JSON
		require.NoError(t, err)
	}
	res := c.ok("keys.scan", obj{"pattern": "k:*", "count": 1000})
	require.Equal(t, false, res["done"], "one scan pages within the budget")
	require.NotEmpty(t, res["keys"])
	ops := make([]obj, 100)
	for i := range ops {
		ops[i] = obj{"method": "keys.scan", "params": obj{"pattern": "k:*", "count": 1000}}
	}
	e := c.fails("invalid_request", "batch", obj{"operations": ops})
	require.Contains(t, e["message"], "ask for fewer at once")
	// A value read after a scan counts with the scan's keys: the first
	// thing a request reads always runs, not the first value.
	_, err := f.db.Set("big", strings.Repeat("<", 40<<10), nil)
	require.NoError(t, err)
	e = c.fails("invalid_request", "batch", obj{"operations": []obj{
		{"method": "keys.scan", "params": obj{"pattern": "k:*", "count": 1000}},
		{"method": "string.get", "params": obj{"key": "big"}},
	}})
	require.Contains(t, e["message"], "ask for fewer at once")
	require.LessOrEqual(t, f.a.Stats().PeakQueuedBytes, int64(256<<10), "a reply past the connection's byte budget")
}

// TestDBX_ScanInAWriteBatch: a scan in a request that writes runs under
// the engine's writer lock, which every writer waits for: it has a
// hundredth of ScanTimeBudget, and the clock is read after every key. A
// count of under 16 keys, which a request that only reads finishes
// whatever its budget, is over it in a batch that writes.
func TestDBX_ScanInAWriteBatch(t *testing.T) {
	f := newFixture(t, &adapter.Options{ScanTimeBudget: time.Nanosecond})
	c := f.dbx("api_key=" + apiKey)
	for i := range 10 {
		_, err := f.db.Set(fmt.Sprintf("k:%02d", i), "v", nil)
		require.NoError(t, err)
	}
	require.Equal(t, 10.0, c.ok("keys.count", obj{"pattern": "/^k:/"})["count"])
	e := c.fails("work_limit_exceeded", "batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "w", "value": "1"}},
		{"method": "keys.count", "params": obj{"pattern": "/^k:/"}},
	}})
	require.Contains(t, e["message"], "a hundredth of it in a request that writes")
	_, err := f.db.Get("w")
	require.ErrorIs(t, err, engine.ErrNotFound, "the failed batch changed nothing")
	// keys.scan returns the page so far, of one key at least.
	res := c.ok("batch", obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "w", "value": "1"}},
		{"method": "keys.scan", "params": obj{"pattern": "/^k:/", "count": 100}},
	}})["results"].([]any)
	page := res[1].(map[string]any)
	require.Equal(t, false, page["done"])
	require.Len(t, page["keys"], 1)
}

// TestDBX_UnsubscribeLeavesTheTokensOwnSubscription: a token's own
// subscription (made at the handshake, notifying without a
// subscriptionId) took id 1, which the client was never given; an
// unsubscribe of 1 (an id from an earlier connection, say) ended it and
// answered success. Its ids are out of unsubscribe's reach now, and the
// client's first subscription is still 1.
func TestDBX_UnsubscribeLeavesTheTokensOwnSubscription(t *testing.T) {
	f := newFixture(t, nil)
	api := f.dbx("api_key=" + apiKey)
	c := f.dbx("api_key=" + f.token(`{"subscribeKeys":["room:1:x"],"accessPattern":"^room:1:"}`))
	sub := c.ok("subscribe", obj{"patterns": []string{"room:1:y"}})
	require.EqualValues(t, 1, sub["subscriptionId"])
	for _, id := range []int{-1, 0, 2} {
		r := c.call("unsubscribe", obj{"subscriptionId": id})
		require.Equal(t, "not_found", r["error"].(map[string]any)["code"], "unsubscribe %d: %v", id, r)
	}
	api.ok("string.set", obj{"key": "room:1:x", "value": "v"})
	m, err := c.tryRead(5 * time.Second)
	require.NoError(t, err, "the token's own subscription no longer notifies")
	require.Equal(t, "room:1:x", m["key"])
	require.NotContains(t, m, "subscriptionId")
}

// TestDBX_ScanPagesTellNothingOfForeignKeys: what a token's keys.scan
// answers depends on the keys it may read only. Where a page stops, its
// done flag and its cursor are the same whether or not keys it may not
// read lie between its access pattern's bounds: else a client could tell
// that a key exists after any cursor it makes up (a cursor is the last
// key examined, and any string will do) and, moving that cursor, spell
// the key out. (A page that runs out of ScanTimeBudget is another
// matter: its time is the keys'.)
func TestDBX_ScanPagesTellNothingOfForeignKeys(t *testing.T) {
	o := &adapter.Options{ScanTimeBudget: time.Hour}
	clean, hidden := newFixture(t, o), newFixture(t, o)
	readable := obj{"room:1:a": "v", "room:1:b": "v", "room:2:a": "v", "room:3:x": "v"}
	clean.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": readable})
	withSecrets := obj{}
	for k, v := range readable {
		withSecrets[k] = v
	}
	for i := range 25 {
		withSecrets[fmt.Sprintf("room:1:a%c", 'a'+i)] = "" // between room:1:a and room:1:b, which the token may read
	}
	for i := range 30 {
		withSecrets[fmt.Sprintf("room:x:hunter%02d", i)] = "secret"
	}
	hidden.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": withSecrets})

	access := `{"accessPattern":"^room:[0-9]+:(a|b|x)$"}`
	cc := clean.dbx("api_key=" + clean.token(access))
	hc := hidden.dbx("api_key=" + hidden.token(access))
	for _, probe := range []obj{
		{"count": 1},
		{"count": 2},
		{"pattern": "room:1:*", "count": 1},
		{"pattern": "*b", "count": 1},
		{"pattern": "*x", "count": 1},
		{"cursor": "room:3:x", "count": 1},
		{"cursor": "room:x:hunter", "count": 1},
		{"cursor": "room:x:hunter1", "count": 1},
		{"cursor": "room:x:hunter2", "count": 1},
		{"cursor": "room:1:a", "count": 1},
		{"cursor": "room:1:a", "count": 1, "pattern": "*b"},
	} {
		want, got := cc.ok("keys.scan", probe), hc.ok("keys.scan", probe)
		require.Equal(t, want, got, "keys.scan %v: the page tells of keys the token may not read", probe)
		// Paging on from the cursor, too.
		for want["done"] == false {
			next := obj{"cursor": want["cursor"], "count": probe["count"]}
			if p, ok := probe["pattern"]; ok {
				next["pattern"] = p
			}
			want, got = cc.ok("keys.scan", next), hc.ok("keys.scan", next)
			require.Equal(t, want, got, "keys.scan %v, after %v", next, probe)
		}
	}
}

// TestDBX_ScanPagesThroughForeignKeys: the keys a token may not read do
// not stop a page at ten times its count, so a page that runs out of
// MaxExaminedKeys on them ends there, with a cursor to go on from, rather
// than fail: paging goes through any number of them.
func TestDBX_ScanPagesThroughForeignKeys(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxExaminedKeys: 50, ScanTimeBudget: time.Hour})
	_, err := f.db.Update(func(tx *engine.Tx) error {
		for i := range 200 {
			k := fmt.Sprintf("k:%03d", i)
			if i%70 == 0 {
				k += ":mine"
			}
			if _, err := tx.Set(k, "", nil); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	c := f.dbx("api_key=" + f.token(`{"accessPattern":":mine$"}`))
	var keys []any
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 50)
		res := c.ok("keys.scan", obj{"cursor": cursor, "count": 1})
		keys = append(keys, res["keys"].([]any)...)
		if res["done"] == true {
			break
		}
		cursor = res["cursor"].(string)
	}
	require.Equal(t, []any{"k:000:mine", "k:070:mine", "k:140:mine"}, keys)
	c.fails("work_limit_exceeded", "keys.count", nil)
}

// TestDBX_ScanOutOfTimeTellsNothingOfForeignKeys: a token's page that runs
// out of ScanTimeBudget stops where the keys it may read alone say (every
// 16 of them, once out of time), never among a few keys it may not read:
// else, as a request's budget can be spent before its scan (a batch's
// earlier operations), the client would choose to get a cursor that is
// the position of a key it may not read, and, scanning from it, tell
// where that key sorts among keys it writes, or count such keys between
// two of its own. Only a run of such keys that takes the whole budget by
// itself, or MaxExaminedKeys, ends a page among them.
func TestDBX_ScanOutOfTimeTellsNothingOfForeignKeys(t *testing.T) {
	o := &adapter.Options{ScanTimeBudget: time.Nanosecond}
	clean, hidden := newFixture(t, o), newFixture(t, o)
	readable, withSecrets := obj{}, obj{}
	for i := range 60 {
		k := fmt.Sprintf("r:%03d:mine", i)
		readable[k], withSecrets[k] = "v", "v"
		for j := range i % 7 * 2 { // runs of 0 to 12 keys it may not read
			withSecrets[fmt.Sprintf("r:%03d:h%02d", i, j)] = "secret"
		}
	}
	clean.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": readable})
	hidden.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": withSecrets})

	access := `{"accessPattern":":mine$"}`
	cc := clean.dbx("api_key=" + clean.token(access))
	hc := hidden.dbx("api_key=" + hidden.token(access))
	for _, probe := range []obj{
		{"count": 1000},
		{"count": 5},
		{"count": 1000, "cursor": "r:010"},
		{"count": 1000, "pattern": "r:03*"},
	} {
		want, got := cc.ok("keys.scan", probe), hc.ok("keys.scan", probe)
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100)
			require.Equal(t, want, got, "keys.scan %v, page %d: the page tells of keys the token may not read", probe, pages)
			require.NotContains(t, got["cursor"], "~sealed:")
			if want["done"] == true {
				break
			}
			next := obj{"cursor": want["cursor"], "count": probe["count"]}
			if p, ok := probe["pattern"]; ok {
				next["pattern"] = p
			}
			want, got = cc.ok("keys.scan", next), hc.ok("keys.scan", next)
		}
	}
	// In a request that writes, the budget is looked at after every key
	// the token may read.
	batch := obj{"operations": []obj{
		{"method": "string.set", "params": obj{"key": "w:mine", "value": "v"}},
		{"method": "keys.scan", "params": obj{"count": 1000, "cursor": "r:020"}},
	}}
	want, got := cc.ok("batch", batch), hc.ok("batch", batch)
	require.Equal(t, want["results"].([]any)[1], got["results"].([]any)[1])
}

// TestDBX_RequestBudgetsTellNothingOfForeignKeys: a request's budgets
// (ScanTimeBudget, MaxExaminedKeys) can be spent before its scans and
// counts, on keys the token may read (a batch's earlier operations), to
// any amount the client likes. So the keys it may not read count apart:
// whether a keys.count or keys.scan then fails, or where it stops, does
// not tell how many of them lie in its range, which, over ranges the
// client chooses, would spell their names out.
func TestDBX_RequestBudgetsTellNothingOfForeignKeys(t *testing.T) {
	o := &adapter.Options{ScanTimeBudget: time.Nanosecond, MaxExaminedKeys: 50}
	clean, hidden := newFixture(t, o), newFixture(t, o)
	readable, withSecrets := obj{}, obj{}
	for i := range 10 {
		k := fmt.Sprintf("r:%02d:mine", i)
		readable[k], withSecrets[k] = "v", "v"
		for j := range 3 {
			withSecrets[fmt.Sprintf("r:%02d:h%d", i, j)] = "secret"
		}
	}
	clean.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": readable})
	hidden.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": withSecrets})

	access := `{"accessPattern":":mine$"}`
	cc := clean.dbx("api_key=" + clean.token(access))
	hc := hidden.dbx("api_key=" + hidden.token(access))
	// Out of time from the start (1ns): a count reads the clock, as a
	// scan does, every 16 keys the token may read.
	for _, p := range []string{"r:*", "r:0*", "*"} {
		require.Equal(t, cc.call("keys.count", obj{"pattern": p})["result"], hc.call("keys.count", obj{"pattern": p})["result"], "keys.count %s", p)
	}
	// MaxExaminedKeys spent on 35 reads of keys the token may read, to
	// leave 15 for the scan or count that follows.
	missing := make([]string, 35)
	for i := range missing {
		missing[i] = fmt.Sprintf("m:%02d:mine", i)
	}
	for _, op := range []obj{
		{"method": "keys.count", "params": obj{"pattern": "r:*"}},
		{"method": "keys.scan", "params": obj{"count": 1000}},
	} {
		batch := obj{"operations": []obj{{"method": "string.mget", "params": obj{"keys": missing}}, op}}
		want, got := cc.call("batch", batch), hc.call("batch", batch)
		require.Equal(t, want["result"], got["result"], "%v", op)
		require.Equal(t, want["error"], got["error"], "%v", op)
	}
}

// TestDBX_OneForeignScanPerRequest: the keys a token may not read have a
// MaxExaminedKeys of their own in a request, and a batch that scanned the
// same range of them again and again would spend it down to any amount,
// so that where its last scan or count ran out would count those keys in
// a range of the client's choosing. A token's request holds one keys.scan
// or keys.count at most.
func TestDBX_OneForeignScanPerRequest(t *testing.T) {
	o := &adapter.Options{MaxExaminedKeys: 20, ScanTimeBudget: time.Hour}
	clean, hidden := newFixture(t, o), newFixture(t, o)
	readable, withSecrets := obj{"a:mine": "v", "b:mine": "v"}, obj{"a:mine": "v", "b:mine": "v"}
	for i := range 6 {
		withSecrets[fmt.Sprintf("a:h%d", i)] = "secret"
	}
	for i := range 3 {
		withSecrets[fmt.Sprintf("b:h%d", i)] = "secret"
	}
	clean.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": readable})
	hidden.dbx("api_key="+apiKey).ok("string.mset", obj{"pairs": withSecrets})

	access := `{"accessPattern":":mine$"}`
	cc := clean.dbx("api_key=" + clean.token(access))
	hc := hidden.dbx("api_key=" + hidden.token(access))
	for _, last := range []string{"keys.scan", "keys.count"} {
		ops := []obj{}
		for range 3 { // 18 of the 20 spent on a:, if it holds 6
			ops = append(ops, obj{"method": "keys.count", "params": obj{"pattern": "a:*"}})
		}
		ops = append(ops, obj{"method": last, "params": obj{"pattern": "b:*"}})
		batch := obj{"operations": ops}
		want, got := cc.call("batch", batch), hc.call("batch", batch)
		require.Equal(t, want["result"], got["result"], "%s", last)
		require.Equal(t, want["error"], got["error"], "%s", last)
		e, _ := got["error"].(map[string]any)
		require.Equal(t, "invalid_request", e["code"], "%v", got)
	}
	// The API key's batches hold any number.
	api := hidden.dbx("api_key=" + apiKey)
	api.ok("batch", obj{"operations": []obj{{"method": "keys.count", "params": obj{"pattern": "a:*"}}, {"method": "keys.scan", "params": obj{"pattern": "b:*"}}}})
}
