package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

// scriptedServer answers a connection's first subscribe with script,
// which writes what it likes (the subscribe's messageId given), then
// holds the connection until the client goes; every other request gets
// no answer. It counts the connections made.
func scriptedServer(t *testing.T, script func(w func(string), id int64)) (url string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		conns.Add(1)
		ctx := r.Context()
		w := func(s string) { _ = ws.Write(ctx, websocket.MessageText, []byte(s)) }
		scripted := false
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				Op        int   `json:"op"`
				MessageID int64 `json:"messageId"`
			}
			if json.Unmarshal(b, &req) == nil && req.Op == wire.OpSubscribe && !scripted {
				scripted = true
				script(w, req.MessageID)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/kv", conns
}

func dialScripted(t *testing.T, url string) (*Client, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, url, &Options{APIKey: "k", MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, ctx
}

// TestClient_CloseAfterTheServerEndedASubscription: a subscription the
// server ended (here 410) with an event its reader never took no longer
// belongs to the client's list; Close must still end its goroutine, and
// return.
func TestClient_CloseAfterTheServerEndedASubscription(t *testing.T) {
	url, _ := scriptedServer(t, func(w func(string), id int64) {
		w(fmt.Sprintf(`{"code":200,"messageId":%d,"subscriptionId":1,"revision":1}`, id))
		w(`{"type":"notification","subscriptionId":1,"key":"a","value":"x","revision":2}`)
		w(`{"code":410,"subscriptionId":1,"revision":1,"oldest":5,"error":"compacted"}`)
	})
	c, ctx := dialScripted(t, url)
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return sub.Err() != nil }, 5*time.Second, time.Millisecond, "the 410 never ended it")
	require.ErrorIs(t, sub.Err(), engine.ErrCompacted)
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		sub.Close() // so that the test ends
		<-closed
		t.Fatal("Client.Close waited for a subscription the server had ended, its event unread")
	}
	for range sub.Events() { // closed, with or without the event
	}
}

// TestSubscription_RevisionGoingBackEndsIt: a subscription's revisions
// never go back (a resume starts after the revision before the last
// event's): one that does is a server's fault, and the subscription ends
// with ErrBadMessage rather than drop the change unseen.
func TestSubscription_RevisionGoingBackEndsIt(t *testing.T) {
	url, _ := scriptedServer(t, func(w func(string), id int64) {
		w(fmt.Sprintf(`{"code":200,"messageId":%d,"subscriptionId":1,"revision":1}`, id))
		w(`{"type":"notification","subscriptionId":1,"key":"a","value":"x","revision":5}`)
		w(`{"type":"notification","subscriptionId":1,"key":"a","value":"x","revision":5}`) // sent again: dropped
		w(`{"type":"notification","subscriptionId":1,"key":"b","value":"y","revision":3}`)
		w(`{"type":"notification","subscriptionId":1,"key":"c","value":"z","revision":6}`)
	})
	c, ctx := dialScripted(t, url)
	sub, err := c.Subscribe(ctx, []string{"*"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	ev, err := sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, "a@5", fmt.Sprintf("%s@%d", ev.Key, ev.Revision))
	ev, err = sub.Next(ctx)
	require.ErrorIs(t, err, ErrBadMessage, "got %s@%d", ev.Key, ev.Revision)
	require.ErrorContains(t, err, "revision 3 after 5")
}

// TestSubscription_RepeatedSubscribeReply: a subscribe reply sent twice
// is a server's fault; taken as a reply nobody waits for, it would
// unsubscribe the subscription while the client thinks it attached, and
// the subscription would go silent. It ends with ErrBadMessage instead.
func TestSubscription_RepeatedSubscribeReply(t *testing.T) {
	url, _ := scriptedServer(t, func(w func(string), id int64) {
		r := fmt.Sprintf(`{"code":200,"messageId":%d,"subscriptionId":1,"revision":1}`, id)
		w(r)
		w(r)
		w(`{"type":"notification","subscriptionId":1,"key":"a","value":"x","revision":2}`)
	})
	c, ctx := dialScripted(t, url)
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, ErrBadMessage)
	require.ErrorContains(t, err, "a second subscribe reply")
}

// TestSubscription_MessageOverTheReadLimit: a notification larger than
// Options.ReadLimit would come again on every resume: the subscription
// ends with ErrMessageTooLarge after one connection, instead of
// reconnecting without end and never saying why.
func TestSubscription_MessageOverTheReadLimit(t *testing.T) {
	var conns atomic.Int64
	db, url := serveInPackage(t, adapter.Options{}, &conns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, &Options{APIKey: "k", ReadLimit: 4096, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	_, err = db.Set("a", strings.Repeat("v", 8000), nil)
	require.NoError(t, err)
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, ErrMessageTooLarge)
	time.Sleep(50 * time.Millisecond) // ten backoffs: time enough to loop
	require.Equal(t, int64(1), conns.Load(), "connections made: the subscription was resumed into the same message")
	// A call on the next connection works.
	_, err = c.Set(ctx, "b", "small", nil)
	require.NoError(t, err)
}

// TestUnsubscribe_RefusedForNowIsSentAgain: an unsubscribe the server
// refuses over the connection's request rate (429) did not run: the
// server still holds the subscription and sends its notifications. The
// client keeps its id retired (dropping them, rather than holding them
// as notifications that came before a subscribe reply) and sends the
// unsubscribe again until it runs.
func TestUnsubscribe_RefusedForNowIsSentAgain(t *testing.T) {
	db, url := serveInPackage(t, adapter.Options{RequestRate: 20, RequestBurst: 3}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, &Options{APIKey: "k", MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.Subscribe(ctx, []string{"a"}, nil) // 1 of the burst of 3
	require.NoError(t, err)
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	for range 2 { // the rest of the burst
		_, err := cn.send(context.Background(), request{Op: wire.OpGet, Key: "x"}, nil)
		require.NoError(t, err)
	}
	sub.Close() // its unsubscribe finds the bucket empty: 429
	for range 20 {
		_, err := db.Set("a", "v", nil)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return cn.settled() }, 5*time.Second, 5*time.Millisecond, "the unsubscribe never ran")
	require.Positive(t, cn.unsubRetries.Load(), "no unsubscribe was refused: the test did not test")
	cn.mu.Lock()
	defer cn.mu.Unlock()
	require.Zero(t, cn.norphans, "notifications of a subscription the client closed held as orphans")
}

// TestSubscribe_FromAheadOfTheServer: a revision the server has not
// reached (it restarted in memory) is refused 410 with no oldest revision:
// an error errors.Is takes for engine.ErrCompacted (read again), which
// keeps the server's words rather than say "revision 0 compacted".
func TestSubscribe_FromAheadOfTheServer(t *testing.T) {
	db, url := serveInPackage(t, adapter.Options{}, nil)
	_, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, &Options{APIKey: "k"})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Subscribe(ctx, []string{"a"}, &SubscribeOptions{FromRevision: 5})
	require.ErrorIs(t, err, engine.ErrCompacted)
	require.ErrorContains(t, err, "the newest is 1")
}

// TestSubscription_NextAfterClientClose: ErrClosed is what every call
// after Client.Close returns, Subscription.Next among them, which also
// says engine.ErrClosed, as a subscription's own Close does.
func TestSubscription_NextAfterClientClose(t *testing.T) {
	c, ctx := dialInPackage(t)
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = sub.Next(ctx)
	require.ErrorIs(t, err, engine.ErrClosed)
	require.ErrorIs(t, err, ErrClosed, "Next after Client.Close")
	_, err = c.Get(ctx, "a")
	require.ErrorIs(t, err, ErrClosed)
}

// TestSubscription_ReplyWithALiveID: a subscribe reply that names a
// subscription the connection already has (a server that gave one id
// twice) would take the first subscription's notifications for the
// second, and leave the first silent. It is a bad message, as a repeated
// reply is.
func TestSubscription_ReplyWithALiveID(t *testing.T) {
	url, _ := answeringServer(t, func(id int64) string {
		return fmt.Sprintf(`{"code":200,"messageId":%d,"subscriptionId":1,"revision":1}`, id)
	})
	c, ctx := dialScripted(t, url)
	a, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	defer a.Close()
	b, err := c.Subscribe(ctx, []string{"b"}, nil)
	if err == nil {
		defer b.Close()
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = a.Next(short)
	require.ErrorIs(t, err, ErrBadMessage, "the first subscription")
}
