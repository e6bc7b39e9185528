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
	"github.com/stretchr/testify/require"
)

// answeringServer answers every request with answer(messageId), and
// counts the requests.
func answeringServer(t *testing.T, answer func(id int64) string) (url string, reqs *atomic.Int64) {
	reqs = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
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
			reqs.Add(1)
			_ = ws.Write(ctx, websocket.MessageText, []byte(answer(req.MessageID)))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/kv", reqs
}

// TestRange_TruncatedPageThatDoesNotAdvance: a truncated range page is
// followed from after its last record; a page whose last record is not
// past where it started would have the next ask for the same page again,
// for ever. It is a bad message, as a truncated page with no records is.
func TestRange_TruncatedPageThatDoesNotAdvance(t *testing.T) {
	url, reqs := answeringServer(t, func(id int64) string {
		return fmt.Sprintf(`{"code":200,"messageId":%d,"records":[{"key":"a","value":"x","revision":1}],"truncated":true,"revision":1}`, id)
	})
	c, _ := dialScripted(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for it, err := range c.Range(ctx, "b", "", nil) {
		require.Empty(t, it.Key, "a key before the range's start")
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ErrBadMessage, "after %d requests", reqs.Load())
}
