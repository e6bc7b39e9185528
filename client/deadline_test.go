package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

// TestRequest_BlockedWriteKeepsTheDeadline: a server that reads nothing
// for a while (its requests in flight all taken, say) fills the
// connection's buffers, and a request's write then waits. A call whose
// context ends meanwhile returns then, with the context's error, as every
// call does; it does not wait for the server to read again.
func TestRequest_BlockedWriteKeepsTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-release // reads nothing until then
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.URL+"/kv", &Options{APIKey: "k", PingInterval: -1})
	require.NoError(t, err)
	defer c.Close()

	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	// Fill the connection's buffers: writes go on until one waits.
	var sent atomic.Int64
	big := strings.Repeat("v", 1<<20)
	go func() {
		for sent.Load() < 200 {
			if _, err := cn.send(context.Background(), request{Op: wire.OpSet, Key: "a", Value: big}, nil); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	for last := int64(-1); ; {
		time.Sleep(300 * time.Millisecond)
		n := sent.Load()
		require.Less(t, n, int64(200), "200 MiB written to a server that reads nothing")
		if n == last {
			break // a write waits
		}
		last = n
	}

	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(short, "a")
		errc <- err
	}()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(3 * time.Second):
		c.Close() // so that the test ends
		<-errc
		t.Fatal("a Get with a 200 ms deadline still waits after 3 s for a write the server does not read")
	}
}
