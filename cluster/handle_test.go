package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

var _ adapter.Store = (*Handle)(nil)

// TestHandle_AdapterServesAFollower serves the REST API from a follower:
// a write goes to the leader, and a linearizable read sees it.
func TestHandle_AdapterServesAFollower(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	a, err := adapter.New(c.nodes[f].With(), &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	defer srv.Close()
	defer a.Shutdown(t.Context())

	do := func(method, path string, body any) (int, map[string]any) {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := do("POST", "/record", map[string]any{"key": "user:1", "value": "Ada"})
	require.Equal(t, http.StatusOK, code, "%v", m)
	code, m = do("GET", "/record/user:1?consistency=linearizable", nil)
	require.Equal(t, http.StatusOK, code, "%v", m)
	require.Equal(t, "Ada", m["value"])
	// Read at the leader level on the leader, again on the next one if an
	// election (under -race on a busy machine) moved it meanwhile.
	for attempt := 0; ; attempt++ {
		it, err := c.nodes[l].Get("user:1", Leader)
		if errors.Is(err, ErrNotLeader) && attempt < 5 {
			l = c.leader()
			continue
		}
		require.NoError(t, err)
		require.Equal(t, "Ada", it.Value, "the write went through the leader")
		break
	}
}

// TestHandle_DBXOnAFollower serves the DBX dialect from a follower: its
// single writes go to the leader; writes that need a transaction, and a
// read at the leader level, are refused with the code not_leader.
func TestHandle_DBXOnAFollower(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	a, err := adapter.New(c.nodes[f].With(), &adapter.Options{APIKeys: []string{"k"}})
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	defer srv.Close()
	defer a.Shutdown(t.Context())

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/dbx/ws?api_key=k", nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	next := 0
	call := func(method string, params any) map[string]any {
		t.Helper()
		next++
		id := fmt.Sprint(next)
		b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
		require.NoError(t, err)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, b))
		for {
			_, b, err := ws.Read(ctx)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			if m["id"] == id {
				return m
			}
		}
	}
	result := func(m map[string]any) map[string]any {
		t.Helper()
		r, ok := m["result"].(map[string]any)
		require.True(t, ok, "%v", m)
		return r
	}
	code := func(m map[string]any) any {
		t.Helper()
		e, ok := m["error"].(map[string]any)
		require.True(t, ok, "%v", m)
		return e["code"]
	}

	// Each reply whole, as a plain DB gives it: the revision a write
	// committed at comes only with a write that changed something.
	written := func(m map[string]any) map[string]any {
		t.Helper()
		r := result(m)
		rev, ok := r["revision"].(float64)
		require.True(t, ok && rev > 0, "%v", r)
		delete(r, "revision")
		return r
	}
	type obj = map[string]any
	require.Equal(t, obj{"success": true, "key": "s"}, written(call("string.set", obj{"key": "s", "value": "a"})))
	require.Equal(t, obj{"success": true, "created": true}, written(call("string.setnx", obj{"key": "n", "value": "1"})))
	require.Equal(t, obj{"success": true, "created": false}, result(call("string.setnx", obj{"key": "n", "value": "2"})))
	require.Equal(t, obj{"value": 6.0}, written(call("string.incrby", obj{"key": "n", "amount": 5})))
	require.Equal(t, obj{"success": true, "deleted": true}, written(call("string.delete", obj{"key": "s"})))
	require.Equal(t, obj{"success": true, "deleted": false}, result(call("string.delete", obj{"key": "s"})))
	result(call("string.set", map[string]any{"key": "txt", "value": "abc"}))
	require.Equal(t, "type_mismatch", code(call("string.incr", map[string]any{"key": "txt"})), "the engine's error, from the leader")
	// Linearizable: the leader may have moved since (an election under load).
	it, err := c.nodes[l].Get("n")
	require.NoError(t, err)
	require.Equal(t, "6", it.Value, "the writes went through the leader")
	_, err = c.nodes[l].Get("s")
	require.ErrorIs(t, err, engine.ErrNotFound)

	// Refused on a follower: the node must stay one, in one term, for the
	// whole call. Under load an election may come in between (f may even
	// win it, and then rightly take the write): such a call tells
	// nothing, and is made again, on a key of its own, with f a follower.
	refused := func(method string, params func(key string) any) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			key := fmt.Sprintf("%s/%d", method, attempt)
			var m map[string]any
			if c.steady(f, "Follower", func() { m = call(method, params(key)) }) {
				require.Equal(t, "not_leader", code(m), "%s", method)
				_, err := c.nodes[c.leader()].Get(key)
				require.ErrorIs(t, err, engine.ErrNotFound, "%s wrote nothing", method)
				return
			}
			c.awayFrom(f, attempt)
		}
	}
	refused("string.append", func(key string) any { return map[string]any{"key": key, "value": "0"} })
	refused("string.mset", func(key string) any { return map[string]any{"pairs": map[string]any{key: "1"}} })
	it, err = c.nodes[c.leader()].Get("n")
	require.NoError(t, err)
	require.Equal(t, "6", it.Value)

	// A read at the leader level off the leader, over REST; as above, made
	// again if f did not stay a follower in one term meanwhile.
	for attempt := 0; ; attempt++ {
		var status int
		var m map[string]any
		if c.steady(f, "Follower", func() {
			req, err := http.NewRequest("GET", srv.URL+"/record/n?consistency=leader", nil)
			require.NoError(t, err)
			req.Header.Set("x-api-key", "k")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			status = resp.StatusCode
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		}) {
			require.Equal(t, http.StatusServiceUnavailable, status)
			require.Equal(t, "not_leader", m["errorCode"], "%v", m)
			return
		}
		c.awayFrom(f, attempt)
	}
}
