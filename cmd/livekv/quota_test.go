package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// visitor is a WebSocket opened with a token from the pages' POST
// /apps/token, as a visitor of the showcase gets one.
type visitor struct {
	t    *testing.T
	ws   *websocket.Conn
	next int
}

func newVisitor(t *testing.T, s *server, app string) *visitor {
	t.Helper()
	resp, err := http.Post(s.base+"/apps/token", "application/json", strings.NewReader(fmt.Sprintf(`{"app":%q}`, app)))
	require.NoError(t, err)
	defer resp.Body.Close()
	var tok struct{ Token string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/kv/ws?token="+url.QueryEscape(tok.Token), nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	return &visitor{t: t, ws: ws}
}

// call sends req and returns its reply's code, skipping notifications.
func (v *visitor) call(req map[string]any) int {
	v.t.Helper()
	v.next++
	req["messageId"] = v.next
	b, err := json.Marshal(req)
	require.NoError(v.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(v.t, v.ws.Write(ctx, websocket.MessageText, b))
	for {
		_, b, err := v.ws.Read(ctx)
		require.NoError(v.t, err)
		var r struct {
			Type      string
			MessageID int
			Code      int
		}
		require.NoError(v.t, json.Unmarshal(b, &r))
		if r.Type != "notification" {
			require.Equal(v.t, v.next, r.MessageID, "%s", b)
			return r.Code
		}
	}
}

// TestServe_AppQuota: a visitor of the todo app fills its quota of keys
// and is refused with 507; the quota is counted again after a restart on
// the same folder, deletes free room, and the chat app has its own.
func TestServe_AppQuota(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1", "--app-quota-keys", "3", "--app-quota-bytes", "1000"}
	set := func(key string) map[string]any { return map[string]any{"op": 2, "key": key, "value": "x"} }

	s := runServe(t, bin, args...)
	v := newVisitor(t, s, "todo")
	for i := 1; i <= 3; i++ {
		require.Equal(t, 200, v.call(set(fmt.Sprint("todo:", i))))
	}
	require.Equal(t, 507, v.call(set("todo:4")))
	require.Equal(t, 507, v.call(map[string]any{"op": 6, "key": "todo:4", "value": 1}))
	require.Equal(t, 404, v.call(map[string]any{"op": 1, "key": "todo:4"}), "nothing written")
	v.ws.CloseNow()
	s.stop(t)

	s = runServe(t, bin, args...)
	v = newVisitor(t, s, "todo")
	require.Equal(t, 507, v.call(set("todo:4")), "still full after the restart")
	require.Equal(t, 200, v.call(map[string]any{"op": 4, "key": "todo:1"}))
	require.Equal(t, 200, v.call(set("todo:4")))
	require.Equal(t, 507, v.call(set("todo:5")))
	chat := newVisitor(t, s, "chat")
	require.Equal(t, 200, chat.call(set("chat:1")), "each app has its own quota")
	require.Equal(t, 507, chat.call(map[string]any{"op": 2, "key": "chat:2", "value": strings.Repeat("x", 1000)}), "bytes")
	s.stop(t)
}

// TestServe_ChatKeysRestart: a chat visitor writes a message under an
// old-scheme key of the largest size, and takes the new keys its rewrite
// could use; serve still starts on the folder, again and again, and the
// message is read where it was.
func TestServe_ChatKeysRestart(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1"}
	set := func(key, text string) map[string]any {
		return map[string]any{"op": 2, "key": key, "value": fmt.Sprintf(`{"user":"eve","text":%q,"ts":1}`, text)}
	}

	s := runServe(t, bin, args...)
	v := newVisitor(t, s, "chat")
	id := strings.Repeat("x", 997)
	ms := time.Now().UnixMilli()
	old := fmt.Sprintf("chat:msg:r:%015d-%s", ms, id) // 1,024 bytes: the key limit
	nk := fmt.Sprintf("chat:msg:r:%013d-%s", 10_000_000_000_000-ms, id)
	require.Len(t, old, 1024)
	for i, k := range []string{nk, nk + "~", nk + "~~", old} {
		require.Equal(t, 200, v.call(set(k, fmt.Sprint(i))), "a value of its own")
	}
	s.stop(t)

	for range 2 {
		s = runServe(t, bin, args...)
		v = newVisitor(t, s, "chat")
		require.Equal(t, 200, v.call(map[string]any{"op": 1, "key": old}))
		s.stop(t)
	}
}
