package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// Requests sent on one DBX connection without waiting for their replies
// take effect in the order sent, while a subscription's notifications
// keep flowing.
func TestDBX_PipelinedRequestsInOrder(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	c.ok("subscribe", obj{"patterns": []string{"d:*"}})

	// Round i: SET d:z, INCRBY d:n by i+1, and in even rounds DEL d:z.
	const rounds = 200
	type sent struct {
		id, method string
		round      int
	}
	var reqs []sent
	var msgs [][]byte
	add := func(method string, round int, params obj) {
		id := fmt.Sprintf("p%d", len(reqs))
		b, err := json.Marshal(obj{"id": id, "method": method, "params": params})
		require.NoError(t, err)
		reqs = append(reqs, sent{id, method, round})
		msgs = append(msgs, b)
	}
	for i := range rounds {
		add("SET", i, obj{"key": "d:z", "value": fmt.Sprintf("v%d", i)})
		add("INCRBY", i, obj{"key": "d:n", "amount": i + 1})
		if i%2 == 0 {
			add("DEL", i, obj{"key": "d:z"})
		}
	}
	wrote := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, b := range msgs {
			if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()

	replies := map[string]map[string]any{}
	for len(replies) < len(reqs) {
		m, err := c.tryRead(10 * time.Second)
		require.NoError(t, err)
		switch m["type"] {
		case "notification":
			c.notes = append(c.notes, m)
			continue
		case "heartbeat":
			continue
		}
		id, _ := m["id"].(string)
		require.NotContains(t, replies, id)
		replies[id] = m
	}
	require.NoError(t, <-wrote)

	var last float64
	sum := 0
	for _, r := range reqs {
		m := replies[r.id]
		require.Nil(t, m["error"], "%s: %v", r.id, m)
		res := m["result"].(map[string]any)
		switch r.method {
		case "INCRBY":
			sum += r.round + 1
			require.EqualValues(t, sum, res["value"], "%s: %v", r.id, m)
		case "DEL":
			require.Equal(t, true, res["deleted"], "%s ran before the SET sent before it: %v", r.id, m)
		}
		rev, ok := res["revision"].(float64)
		require.True(t, ok, "%s: %v", r.id, m)
		require.Greater(t, rev, last, "%s took effect before a request sent before it", r.id)
		last = rev
	}
	require.EqualValues(t, f.db.Revision(), last)

	got := c.ok("string.get", obj{"key": "d:z"})
	require.Equal(t, fmt.Sprintf("v%d", rounds-1), got["value"])
	require.Equal(t, fmt.Sprint(rounds*(rounds+1)/2), c.ok("GET", obj{"key": "d:n"})["value"])

	// One notification per write, in the order of the writes.
	for len(c.notes) < len(reqs) {
		m, err := c.tryRead(5 * time.Second)
		require.NoError(t, err)
		if m["type"] == "notification" {
			c.notes = append(c.notes, m)
		}
	}
	for i, r := range reqs {
		n := c.notes[i]
		require.Equal(t, replies[r.id]["result"].(map[string]any)["revision"], n["revision"], "%d: %v", i, n)
		require.Equal(t, r.method == "DEL", n["deleted"] == true, "%d: %v", i, n)
	}
}

// ping echoes DBX's params.message as pong; without one, pong is true.
func TestDBX_PingMessage(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dbx("api_key=" + apiKey)
	require.Equal(t, obj{"pong": "hello é"}, c.ok("ping", obj{"message": "hello é"}))
	require.Equal(t, obj{"pong": ""}, c.ok("PING", obj{"message": ""}))
	require.Equal(t, obj{"pong": true}, c.ok("ping", obj{}))
	require.Equal(t, obj{"pong": true}, c.ok("ping", nil))
	c.fails("invalid_request", "ping", obj{"message": 5})
	res := c.ok("batch", obj{"operations": []obj{{"method": "ping", "params": obj{"message": "a"}}, {"method": "ping"}}})
	require.Equal(t, []any{obj{"pong": "a"}, obj{"pong": true}}, res["results"])
}

// A DBX connection's client_id names it in the adapter's log lines (and
// not in OnRequest: see docs/protocol.md).
func TestDBX_ClientIDInLogs(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	var ops []string
	f := newFixture(t, &adapter.Options{
		MaxMessageSize: 1024,
		Logf: func(format string, args ...any) {
			mu.Lock()
			lines = append(lines, fmt.Sprintf(format, args...))
			mu.Unlock()
		},
		OnRequest: func(op string, code int) {
			mu.Lock()
			ops = append(ops, op)
			mu.Unlock()
		},
	})
	c := f.dbx("api_key=" + apiKey + "&client_id=" + url.QueryEscape("billing-worker 7"))
	c.ok("ping", nil)
	// A message over MaxMessageSize: the server logs the read error (a
	// connection dropped without a close frame is not one).
	c.writeRaw([]byte(`{"id":"big","method":"ping","params":{"message":"` + strings.Repeat("x", 2000) + `"}}`))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, `livekv adapter: read (client "billing-worker 7"): `) {
				return true
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"dbx.ping"}, ops)
}

// A store error that is none of the others' (here the log's file system
// failing a write) is server_error; a closed DB is service_unavailable.
// Neither writes anything.
func TestDBX_StoreErrors(t *testing.T) {
	fs := vfs.NewMemFS()
	db, err := engine.Open("/db", &engine.Options{FS: fs, SweepInterval: -1})
	require.NoError(t, err)
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	c := f.dbx("api_key=" + apiKey)
	c.ok("string.set", obj{"key": "k", "value": "v1"})

	fs.FailAt(1, true)
	e := c.fails("server_error", "string.set", obj{"key": "k", "value": "v2"})
	require.Contains(t, e["message"], vfs.ErrInjected.Error())
	e = c.fails("server_error", "batch", obj{"operations": []obj{{"method": "ping"}, {"method": "INCR", "params": obj{"key": "n"}}}})
	require.NotContains(t, e, "operation", "the commit failed, not one operation")
	require.Contains(t, e["message"], "the batch changed nothing")
	fs.FailAt(0, false)
	// The log refuses writes until the DB is reopened; reads still work.
	c.fails("server_error", "string.set", obj{"key": "k", "value": "v3"})
	require.Equal(t, obj{"value": "v1", "ttl": -1.0}, c.ok("string.get", obj{"key": "k"}))
	c.fails("not_found", "string.get", obj{"key": "n"})

	require.ErrorIs(t, db.Close(), vfs.ErrInjected)
	c.fails("service_unavailable", "string.get", obj{"key": "k"})
	c.fails("service_unavailable", "string.set", obj{"key": "k", "value": "v4"})
}
