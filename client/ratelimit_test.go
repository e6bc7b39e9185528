package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestRateLimited_RetryGoesOnANewConnection: a request refused over the
// rate (429) did not run, and the client sends it again after a pause. A
// connection that ends in that pause leaves the retry unsent: it goes on
// a new connection, as any request that never left does, rather than
// fail with ErrConnectionLost, which would say its outcome is unknown.
func TestRateLimited_RetryGoesOnANewConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		first := conns.Add(1) == 1
		ctx := r.Context()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				MessageID int64 `json:"messageId"`
			}
			if json.Unmarshal(b, &req) != nil {
				return
			}
			if first {
				// Over the rate, then gone (a restart, say).
				_ = ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"code":429,"messageId":%d,"error":"too many requests"}`, req.MessageID))
				ws.Close(websocket.StatusGoingAway, "")
				return
			}
			_ = ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"code":404,"messageId":%d,"error":"not found"}`, req.MessageID))
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.URL+"/kv", &Options{APIKey: "k"})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, engine.ErrNotFound, "the retry reached the server")
	require.Equal(t, int64(2), conns.Load())
}
