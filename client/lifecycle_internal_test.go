package client

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestSubscribe_RacingTheSupervisorIsSentOnce: Subscribe makes its new
// subscription known to the client before the reply to its subscribe
// comes; a supervisor pass in that window (woken by other subscriptions'
// resumes) sent a second subscribe for it, which, over a connection cap
// of 1, was refused and ended the live subscription.
func TestSubscribe_RacingTheSupervisorIsSentOnce(t *testing.T) {
	c, ctx := wokenClient(t)
	for i := range 100 {
		sub, err := c.Subscribe(ctx, []string{"a"}, nil)
		require.NoError(t, err, "try %d", i)
		time.Sleep(5 * time.Millisecond)
		require.NoError(t, sub.Err(), "try %d: the only subscription, under a cap of 1, ended", i)
		sub.Close()
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		require.Eventually(t, cn.settled, 5*time.Second, time.Millisecond)
	}
}

// TestSubscribe_RefusalIsReturnedWhileTheSupervisorRuns: Subscribe
// returns how its subscribe went. When a supervisor pass (woken by other
// subscriptions' resumes) sent the subscribe first, Subscribe returned
// at once with no error, before the server refused it (over a connection
// cap of 1 here) or had made it.
func TestSubscribe_RefusalIsReturnedWhileTheSupervisorRuns(t *testing.T) {
	c, ctx := wokenClient(t)
	_, err := c.Subscribe(ctx, []string{"a"}, nil)
	require.NoError(t, err)
	for i := range 200 {
		sub, err := c.Subscribe(ctx, []string{"b"}, nil)
		if err == nil {
			sub.Close()
		}
		require.ErrorIs(t, err, ErrSubscriptionLimit, "try %d", i)
	}
}

// TestClose_SecondWaitsForTheFirst: a second Close, while the first waits
// for the client's goroutines (here for a server that never answers the
// close handshake), returns only once they have ended, as Close says.
func TestClose_SecondWaitsForTheFirst(t *testing.T) {
	end := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-end // never reads: never answers the close handshake
	}))
	defer srv.Close()
	defer close(end)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.URL+"/kv", &Options{APIKey: "k"})
	require.NoError(t, err)
	first := make(chan struct{})
	go func() { _ = c.Close(); close(first) }()
	require.Eventually(t, func() bool { // the first Close has begun
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case <-first:
	default:
		buf := make([]byte, 1<<20)
		reading := strings.Count(string(buf[:runtime.Stack(buf, true)]), "client.(*conn).read(")
		<-first
		t.Fatalf("the second Close returned while the first waited for the client's goroutines (%d readers running)", reading)
	}
}

// TestSubscribe_ReplyWithoutIDIsBadMessage: a subscribe reply with code
// 200 and no subscriptionId is against the protocol; Subscribe returned
// a subscription attached to nothing, which never received or ended.
func TestSubscribe_ReplyWithoutIDIsBadMessage(t *testing.T) {
	url, _ := scriptedServer(t, func(w func(string), id int64) {
		w(fmt.Sprintf(`{"code":200,"messageId":%d,"revision":1}`, id))
	})
	c, ctx := dialScripted(t, url)
	sub, err := c.Subscribe(ctx, []string{"a"}, nil)
	if err == nil {
		sub.Close()
	}
	require.ErrorIs(t, err, ErrBadMessage)
}

// TestDial_Backoffs: MaxBackoff alone below MinBackoff's default lowers
// that default rather than being raised to 5 s; below a MinBackoff set
// too, it is refused.
func TestDial_Backoffs(t *testing.T) {
	_, url := serveInPackage(t, adapter.Options{}, nil)
	c, err := Dial(t.Context(), url, &Options{APIKey: "k", MaxBackoff: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 50*time.Millisecond, c.opts.MinBackoff)
	require.Equal(t, 50*time.Millisecond, c.opts.MaxBackoff)
	require.NoError(t, c.Close())
	c, err = Dial(t.Context(), url, &Options{APIKey: "k"})
	require.NoError(t, err)
	require.Equal(t, 100*time.Millisecond, c.opts.MinBackoff)
	require.Equal(t, 5*time.Second, c.opts.MaxBackoff)
	require.NoError(t, c.Close())
	_, err = Dial(t.Context(), url, &Options{APIKey: "k", MinBackoff: time.Second, MaxBackoff: 500 * time.Millisecond})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
}

// wokenClient dials a server whose connections hold at most one
// subscription, and wakes the client's supervisor again and again until
// the test ends, as other subscriptions' resumes would.
func wokenClient(t *testing.T) (*Client, context.Context) {
	_, url := serveInPackage(t, adapter.Options{MaxSubscriptions: 1}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, url, &Options{APIKey: "k"})
	require.NoError(t, err)
	stop, stopped := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-stopped
		require.NoError(t, c.Close())
	})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				c.wake()
				time.Sleep(10 * time.Microsecond)
			}
		}
	}()
	return c, ctx
}

// TestOptions_Backoff: the pause after each failure in a row, for
// reconnecting and for an unsubscribe refused for now alike, starts at
// MinBackoff and doubles up to MaxBackoff, where it stays, however many
// failures come.
func TestOptions_Backoff(t *testing.T) {
	o := Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	var got []time.Duration
	for tries := 1; tries <= 8; tries++ {
		got = append(got, o.backoff(tries))
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms}, got)
	require.Equal(t, 5*time.Second, o.backoff(1_000_000))

	o = Options{MinBackoff: time.Nanosecond, MaxBackoff: math.MaxInt64} // no overflow on the way up
	for tries := 1; tries <= 100; tries++ {
		b := o.backoff(tries)
		require.Positive(t, b)
		if tries <= 63 {
			require.Equal(t, time.Duration(1)<<(tries-1), b)
		}
	}
	o = Options{MinBackoff: time.Second, MaxBackoff: time.Second}
	require.Equal(t, time.Second, o.backoff(1))
	require.Equal(t, time.Second, o.backoff(40))
}
