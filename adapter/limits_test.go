package adapter_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

func TestWS_MessageTooBig(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxMessageSize: 1024})
	c := f.dial("apiKey=" + apiKey)
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "k", "value": strings.Repeat("v", 900)})["code"])
	c.write(m{"op": 2, "key": "k", "value": strings.Repeat("v", 2000)})
	require.Equal(t, websocket.StatusMessageTooBig, c.closeStatus())
}

func TestWS_Origins(t *testing.T) {
	f := newFixture(t, &adapter.Options{AllowedOrigins: []string{"good.example"}})
	for origin, want := range map[string]int{
		"http://evil.example": http.StatusForbidden,
		"http://good.example": http.StatusSwitchingProtocols,
		"":                    http.StatusSwitchingProtocols, // not a browser
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := f.dialRaw("apiKey="+apiKey, h)
		require.Equal(t, want, resp.StatusCode, origin)
		if err == nil {
			ws.CloseNow()
		}
	}
}

// TestWS_RateLimit: over the rate, requests get 429, which the official
// client understands, and the connection goes on.
func TestWS_RateLimit(t *testing.T) {
	f := newFixture(t, &adapter.Options{RequestRate: 5, RequestBurst: 5})
	c := f.dial("apiKey=" + apiKey)
	for i := 1; i <= 30; i++ {
		c.write(m{"op": 1, "key": "k", "messageId": i})
	}
	codes := map[float64]int{}
	for i := 0; i < 30; i++ {
		r := c.read()
		codes[r["code"].(float64)]++
		require.NotNil(t, r["messageId"])
	}
	require.GreaterOrEqual(t, codes[429], 20, "%v", codes)
	require.GreaterOrEqual(t, codes[404], 5, "%v", codes)
	time.Sleep(400 * time.Millisecond)
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "k"})["code"], "the bucket refills")
}

// Messages that do not decode take from the bucket as requests do: over
// the rate they get 429, so that a flood of them is limited too.
func TestWS_RateLimitsBadMessages(t *testing.T) {
	f := newFixture(t, &adapter.Options{RequestRate: 1, RequestBurst: 5})
	c := f.dial("apiKey=" + apiKey)
	codes := map[float64]int{}
	for i := 0; i < 30; i++ {
		if i%2 == 0 {
			c.writeRaw([]byte(`{"op":1,"key":"k","messageId":1,`)) // cut short
		} else {
			require.NoError(t, c.ws.Write(context.Background(), websocket.MessageBinary, []byte("{}")))
		}
		codes[c.read()["code"].(float64)]++
	}
	require.GreaterOrEqual(t, codes[http.StatusTooManyRequests], 20, "codes %v", codes)
	require.GreaterOrEqual(t, codes[http.StatusBadRequest], 5, "codes %v", codes)
}

// TestWS_RateLimitKeepsMessageID: a message that does not decode gets its
// 429 with its messageId, as its 400 would have it, and is counted as no
// operation, even one whose op was read.
func TestWS_RateLimitKeepsMessageID(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := newFixture(t, &adapter.Options{RequestRate: 0.001, RequestBurst: 1, OnRequest: func(op string, code int) {
		mu.Lock()
		seen[fmt.Sprintf("%s %d", op, code)]++
		mu.Unlock()
	}})
	c := f.dial("apiKey=" + apiKey)
	c.writeRaw([]byte(`{"op":1,"key":5,"messageId":1}`)) // takes the one token
	r := c.read()
	require.Equal(t, 400.0, r["code"])
	require.Equal(t, 1.0, r["messageId"], "%v", r)
	for id, raw := range map[float64]string{
		2: `{"op":1,"key":5,"messageId":2}`,
		3: `{"op":5,"key":"a","limit":-1,"messageId":3}`,
	} {
		c.writeRaw([]byte(raw))
		r = c.read()
		require.Equal(t, 429.0, r["code"], raw)
		require.Equal(t, id, r["messageId"], "%s: %v", raw, r)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"invalid 400": 1, "invalid 429": 2}, seen)
}

// TestWS_SlowClient: a subscriber that stops reading is closed once its
// queue has stayed full for SlowClientTimeout; writers and other clients
// never wait for it.
func TestWS_SlowClient(t *testing.T) {
	// A history that holds every write of the test: on a loaded machine
	// the stalled subscription falls far behind, and with the default
	// history it would end as compacted (and its connection send a 410)
	// after a few hundred notifications, before the socket filled and the
	// client showed itself slow.
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, HistoryBytes: 256 << 20},
		&adapter.Options{SendQueue: 4, SlowClientTimeout: 200 * time.Millisecond})
	tok := f.token(`{"subscribePatterns":["*"]}`)
	stalled := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 404.0, stalled.call(m{"op": 1, "key": "none"})["code"])
	other := f.dial("apiKey=" + apiKey)
	f.writeUntilSlowClosed()
	require.Equal(t, 200.0, other.call(m{"op": 2, "key": "k", "value": "v"})["code"], "others go on")
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 1 }, 10*time.Second, 10*time.Millisecond)
}

// TestWS_DeadPeer: a peer that answers no ping is closed.
func TestWS_DeadPeer(t *testing.T) {
	f := newFixture(t, &adapter.Options{PingInterval: 100 * time.Millisecond})
	alive := f.dial("apiKey=" + apiKey)
	ws, _, err := f.dialRaw("apiKey="+apiKey, nil) // never reads, so never answers a ping
	require.NoError(t, err)
	defer ws.CloseNow()
	// The live client reads (and so answers pings) while it makes requests.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		require.Equal(t, 404.0, alive.call(m{"op": 1, "key": "k"})["code"])
	}
	require.Equal(t, int64(1), f.a.Stats().DeadPeers, "only the peer that never read")
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 1 }, 5*time.Second, 10*time.Millisecond)
}

// TestWS_BusyPeerAnswersPings: a client whose requests hold every slot
// (MaxInFlight) waits for the server, which then reads nothing from it,
// pongs included; a ping that goes unanswered meanwhile is not a dead
// peer, and the connection stays open until its requests are answered.
func TestWS_BusyPeerAnswersPings(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxInFlight: 1, PingInterval: 50 * time.Millisecond})
	c := f.dial("apiKey=" + apiKey)
	release := holdWriter(t, f.db)
	c.write(m{"op": 2, "key": "a", "value": "v", "messageId": 1})
	c.write(m{"op": 2, "key": "b", "value": "v", "messageId": 2}) // waits for a slot
	replies := make(chan map[string]any, 2)
	go func() { // reads, and so answers pings
		defer close(replies)
		for range 2 {
			r, err := c.tryRead(5 * time.Second)
			if err != nil {
				return
			}
			replies <- r
		}
	}()
	time.Sleep(500 * time.Millisecond)
	release()
	for id := 1.0; id <= 2; id++ {
		r := <-replies
		require.Equal(t, id, r["messageId"], "%v", r)
		require.Equal(t, 200.0, r["code"], "%v", r)
	}
	require.Zero(t, f.a.Stats().DeadPeers)
}

// TestWS_SlowReaderOfLargeReply: a client that reads a large reply
// slowly but steadily, for several ping intervals, takes bytes all along:
// it is alive, and gets its whole reply, while the unread rest of the
// reply holds back the server's pings.
func TestWS_SlowReaderOfLargeReply(t *testing.T) {
	// An interval with room for a loaded machine: a pong waits behind what
	// the sockets hold, about 130 KiB here, an eighth of a second, where
	// the reply takes twice the interval.
	f := newFixture(t, &adapter.Options{PingInterval: time.Second})
	value := strings.Repeat("x", 1000<<10)
	for i := range 2 {
		_, err := f.db.Set(fmt.Sprintf("big:%d", i), value, nil)
		require.NoError(t, err)
	}
	c := f.dialSlow("apiKey="+apiKey, 1<<20) // about 2 s for the reply
	r := c.call(m{"op": 5, "key": "big:", "endKey": "big:~"})
	require.Equal(t, 200.0, r["code"], "%v", r)
	require.Len(t, r["records"], 2)
	require.Equal(t, false, r["truncated"])
	// It then reads at its ease, and answers pings.
	for range 3 {
		time.Sleep(time.Second)
		require.Equal(t, 404.0, c.call(m{"op": 1, "key": "none"})["code"])
	}
	require.Zero(t, f.a.Stats().DeadPeers)
}

// TestWS_DeadPeerMidReply: a peer that stops reading in the middle of a
// large reply is closed as dead once the writer has written what the
// sockets take of it.
func TestWS_DeadPeerMidReply(t *testing.T) {
	f := newFixture(t, &adapter.Options{PingInterval: 100 * time.Millisecond})
	value := strings.Repeat("x", 1000<<10)
	for i := range 2 {
		_, err := f.db.Set(fmt.Sprintf("big:%d", i), value, nil)
		require.NoError(t, err)
	}
	ws, _, err := f.dialRaw("apiKey="+apiKey, nil) // never reads
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(context.Background(), websocket.MessageText, []byte(`{"op":5,"key":"big:","endKey":"big:~","messageId":1}`)))
	require.Eventually(t, func() bool { return f.a.Stats().DeadPeers == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 0 }, 5*time.Second, 10*time.Millisecond)
}

// TestWS_SlowSenderOfLargeMessage: a client that sends a large message
// slowly, for several ping intervals, can answer no ping meanwhile; the
// bytes of its message, arriving all along, say that it is alive.
func TestWS_SlowSenderOfLargeMessage(t *testing.T) {
	// Parts of 16 KiB arrive every 60 ms or so: eight to an interval,
	// room for a loaded machine; the upload takes four intervals.
	f := newFixture(t, &adapter.Options{PingInterval: 500 * time.Millisecond})
	c := f.dialSlow("apiKey="+apiKey, 256<<10)
	value := strings.Repeat("x", 512<<10) // about 2 s to send
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "big", "value": value})["code"])
	require.Equal(t, 200.0, c.call(m{"op": 2, "key": "small", "value": "v"})["code"])
	require.Zero(t, f.a.Stats().DeadPeers)
}

// TestWS_DropIsNotLogged: a client that goes without a close frame (its
// process killed: the socket closed, or reset when it held unread bytes)
// is a normal end of a connection, which Logf does not report; a client
// breaking the protocol is reported.
func TestWS_DropIsNotLogged(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	f := newFixture(t, &adapter.Options{MaxMessageSize: 1024, Logf: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	for _, reset := range []bool{false, true} {
		var nc *net.TCPConn
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				nc = c.(*net.TCPConn)
			}
			return c, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, _, err := websocket.Dial(ctx, strings.Replace(f.base, "http", "ws", 1)+"/ws?apiKey="+apiKey,
			&websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial}}})
		cancel()
		require.NoError(t, err)
		c := &client{t: t, ws: ws}
		require.Equal(t, 200.0, c.call(m{"op": 2, "key": "k", "value": "v"})["code"])
		if reset {
			require.NoError(t, nc.SetLinger(0)) // closing sends a reset
		}
		require.NoError(t, ws.CloseNow()) // no close frame
		require.Eventually(t, func() bool { return f.a.Stats().Connections == 0 }, 5*time.Second, time.Millisecond)
	}
	mu.Lock()
	require.Empty(t, lines)
	mu.Unlock()

	c := f.dial("apiKey=" + apiKey)
	c.write(m{"op": 2, "key": "k", "value": strings.Repeat("v", 2000)})
	require.Equal(t, websocket.StatusMessageTooBig, c.closeStatus())
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lines) == 1
	}, 5*time.Second, time.Millisecond)
}

// TestShutdown: requests under way get their replies, connections close
// with 1001, later requests get 503, and no goroutine is left (TestMain).
func TestShutdown(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	const n = 200
	for i := 1; i <= n; i++ {
		c.write(m{"op": 6, "key": "n", "value": 1, "messageId": i})
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.a.Shutdown(ctx)
	}()
	replies, done200 := 0, 0
	for {
		r, err := c.tryRead(10 * time.Second)
		if err != nil {
			require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err))
			break
		}
		require.Contains(t, []float64{200, 503}, r["code"], "%v", r)
		if r["code"] == 200.0 {
			done200++
		}
		replies++
	}
	require.NoError(t, <-done)
	require.Equal(t, fmt.Sprint(done200), f.counter("n"), "every increment that ran was answered, and only those")
	t.Logf("%d replies, %d increments", replies, done200)
	code, body := f.rest("GET", "/record/n", apiKey, "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, map[string]any{"error": "shutting down"}, body, "a REST body, without code")
	_, resp, err := f.dialRaw("apiKey="+apiKey, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// writeUntilSlowClosed writes 4 KiB values to 100 keys until the adapter
// closes a client that does not read as slow, which it must within 10 s.
func (f *fixture) writeUntilSlowClosed() {
	f.t.Helper()
	value := strings.Repeat("x", 4096)
	start := time.Now()
	for i := 0; i < 20000 && f.a.Stats().SlowClosed == 0; i++ {
		_, err := f.db.Set(fmt.Sprintf("k%d", i%100), value, nil)
		require.NoError(f.t, err)
	}
	require.Eventually(f.t, func() bool { return f.a.Stats().SlowClosed == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Less(f.t, time.Since(start), 10*time.Second)
}

// counter is the value of key, "0" if it does not exist.
func (f *fixture) counter(key string) string {
	if it, err := f.db.Get(key); err == nil {
		return it.Value
	}
	return "0"
}

func TestNew_InvalidOptions(t *testing.T) {
	f := newFixture(t, nil)
	for _, o := range []*adapter.Options{nil, {}, {APIKeys: []string{""}}, {APIKeys: []string{"k", " k"}}, {APIKeys: []string{"k\t"}},
		{APIKeys: []string{"k"}, TokenSecret: []byte("short")},
		{APIKeys: []string{"k"}, RequestRate: -1}, {APIKeys: []string{"k"}, DefaultRangeLimit: 5000}} {
		_, err := adapter.New(f.db, o)
		require.ErrorIs(t, err, adapter.ErrInvalidOptions, "%+v", o)
	}
}

// TestNew_MaxRangeLimitAlone sets MaxRangeLimit under the default
// DefaultRangeLimit and leaves DefaultRangeLimit zero, which means its
// default: the adapter starts, and a range without a limit returns at
// most MaxRangeLimit records.
func TestNew_MaxRangeLimitAlone(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxRangeLimit: 10})
	for i := range 20 {
		_, err := f.db.Set(fmt.Sprintf("k%02d", i), "v", nil)
		require.NoError(t, err)
	}
	code, m := f.rest("GET", "/records?startKey=k", apiKey, "")
	require.Equal(t, http.StatusOK, code, "%v", m)
	require.EqualValues(t, 10, m["count"])
	require.Equal(t, true, m["truncated"])
}

// TestNew_BadAllowedOrigin: an AllowedOrigins pattern that path.Match
// cannot parse would refuse every page of another host, those of the
// valid patterns included; New refuses it instead.
func TestNew_BadAllowedOrigin(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"[", "good.example\\", "*.[a-"} {
		_, err := adapter.New(f.db, &adapter.Options{APIKeys: []string{"k"}, AllowedOrigins: []string{"good.example", p}})
		require.ErrorIs(t, err, adapter.ErrInvalidOptions, "%q", p)
		require.ErrorContains(t, err, "AllowedOrigins")
	}
	_, err := adapter.New(f.db, &adapter.Options{APIKeys: []string{"k"}, AllowedOrigins: []string{"*.example", "localhost:*", "https://app.example"}})
	require.NoError(t, err)
}

// TestShutdown_ConnectionArrivingMeanwhile: a connection whose handshake
// ends as Shutdown runs is closed (1001) without waiting out the close
// handshake's own timeouts for a client that never answers it: Shutdown
// returns after the second a close handshake is given.
func TestShutdown_ConnectionArrivingMeanwhile(t *testing.T) {
	var hold atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	f := newFixture(t, &adapter.Options{Now: func() time.Time {
		if hold.CompareAndSwap(true, false) { // the dial's token check
			close(entered)
			<-release
		}
		return time.Now()
	}})
	tok := f.token(`{"accessPattern":"^k"}`)
	hold.Store(true)
	dialed := make(chan *websocket.Conn, 1)
	go func() {
		ws, _, err := f.dialRaw("token="+url.QueryEscape(tok), nil)
		if err == nil {
			dialed <- ws // never reads: never answers the close
		}
		close(dialed)
	}()
	<-entered
	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- f.a.Shutdown(ctx)
	}()
	require.Eventually(t, func() bool {
		code, _ := f.rest("GET", "/record/k", apiKey, "")
		return code == http.StatusServiceUnavailable
	}, 5*time.Second, time.Millisecond, "shutting down")
	close(release)
	ws := <-dialed
	require.NotNil(t, ws, "the handshake ends")
	defer ws.CloseNow()
	require.NoError(t, <-shut)
	require.Less(t, time.Since(start), 3*time.Second, "Shutdown waited for a close handshake the client never answers")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ws.Read(ctx)
	require.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "%v", err)
}

// TestShutdown_DropsWhatIsLeft: a client that reads nothing, whose
// requests wait to queue their replies for as long as SlowClientTimeout
// lets them, holds its connection past Shutdown's context; Shutdown then
// drops it, and its goroutines end (TestMain) without waiting out the
// timeout.
func TestShutdown_DropsWhatIsLeft(t *testing.T) {
	f := newFixture(t, &adapter.Options{SlowClientTimeout: 5 * time.Minute})
	value := strings.Repeat("x", 512<<10)
	for i := range 8 {
		_, err := f.db.Set(fmt.Sprintf("big:%d", i), value, nil)
		require.NoError(t, err)
	}
	ws, _, err := f.dialRaw("apiKey="+apiKey, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	for i := 1; i <= 32; i++ { // far more than the socket and the byte budget hold
		b := fmt.Sprintf(`{"op":5,"key":"big:","endKey":"big:~","limit":100,"messageId":%d}`, i)
		require.NoError(t, ws.Write(context.Background(), websocket.MessageText, []byte(b)))
	}
	require.Eventually(t, func() bool { return f.a.Stats().PeakQueuedBytes >= 4<<20 }, 10*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, f.a.Shutdown(ctx), context.DeadlineExceeded, "a reply waits for room")
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 0 }, 10*time.Second, 10*time.Millisecond,
		"dropped, not left until SlowClientTimeout")
}
