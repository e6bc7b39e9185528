package adapter_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestWS_TokenNotifications: a token's subscribe keys and patterns become
// notifications, in order, a delete as null, with revisions; keys outside
// the subscriptions or the access pattern are not sent.
func TestWS_TokenNotifications(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(`{"subscribeKeys":["exact*key"],"subscribePatterns":["user:*","*:session"],"accessPattern":"^(user|exact|s)"}`)
	sub := f.dial("token=" + url.QueryEscape(tok))
	w := f.dial("apiKey=" + apiKey)
	// The subscription starts when the connection opens; a request
	// round trip makes sure it has.
	require.Equal(t, 404.0, sub.call(m{"op": 1, "key": "user:none"})["code"])

	w.call(m{"op": 2, "key": "user:1", "value": "a"})
	w.call(m{"op": 2, "key": "other", "value": "x"})
	w.call(m{"op": 2, "key": "exact*key", "value": "e"})
	w.call(m{"op": 2, "key": "exactXkey", "value": "not the key"})
	w.call(m{"op": 3, "key": "user:1", "value": "b"})
	w.call(m{"op": 6, "key": "user:n", "value": 3})
	w.call(m{"op": 2, "key": "x:session", "value": "outside the access pattern"})
	w.call(m{"op": 2, "key": "s:session", "value": "s"})
	w.call(m{"op": 4, "key": "user:1"})

	want := []struct {
		key   string
		value any
	}{{"user:1", "a"}, {"exact*key", "e"}, {"user:1", "ab"}, {"user:n", "3"}, {"s:session", "s"}, {"user:1", nil}}
	last := 0.0
	for _, w := range want {
		n := sub.note()
		require.Equal(t, w.key, n["key"])
		require.Equal(t, w.value, n["value"])
		require.Greater(t, n["revision"], last)
		last = n["revision"].(float64)
		require.Greater(t, n["timestamp"], 1e12, "milliseconds")
		require.NotContains(t, n, "subscriptionId", "token notifications look like HPKV's")
	}
}

// TestWS_SubscribeAndResume: the subscribe message adds subscriptions to an
// open connection, unsubscribe removes them, and a client that reconnects
// with the last revision it saw misses nothing.
func TestWS_SubscribeAndResume(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{"a:*"}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	id := r["subscriptionId"]
	c.call(m{"op": 2, "key": "a:1", "value": "1"})
	c.call(m{"op": 2, "key": "b:1", "value": "1"})
	n := c.note()
	require.Equal(t, "a:1", n["key"])
	require.Equal(t, id, n["subscriptionId"])
	seen := n["revision"].(float64)

	require.Equal(t, 200.0, c.call(m{"op": 101, "subscriptionId": id})["code"])
	require.Equal(t, 404.0, c.call(m{"op": 101, "subscriptionId": id})["code"])
	c.call(m{"op": 2, "key": "a:2", "value": "2"})
	require.Empty(t, c.notes, "no notification after unsubscribe")

	// Writes while nobody listens, then a resume from the last revision seen.
	for i := 3; i < 6; i++ {
		_, err := f.db.Set(fmt.Sprintf("a:%d", i), "v", nil)
		require.NoError(t, err)
	}
	c2 := f.dial("apiKey=" + apiKey)
	r = c2.call(m{"op": 100, "patterns": []string{"a:*"}, "fromRevision": seen})
	require.Equal(t, 200.0, r["code"], "%v", r)
	for _, k := range []string{"a:2", "a:3", "a:4", "a:5"} {
		require.Equal(t, k, c2.note()["key"])
	}

	// A token subscription resumes through the URL.
	tok := f.token(`{"subscribePatterns":["a:*"]}`)
	c3 := f.dial(fmt.Sprintf("token=%s&fromRevision=%d", url.QueryEscape(tok), int64(seen)))
	for _, k := range []string{"a:2", "a:3", "a:4", "a:5"} {
		require.Equal(t, k, c3.note()["key"])
	}

	bad := c2.call(m{"op": 100, "patterns": []string{"/(/"}})
	require.Equal(t, 400.0, bad["code"])
	require.Equal(t, 400.0, c2.call(m{"op": 100})["code"])
}

// A token connection that saw no change of a new DB resumes with
// &fromRevision=0: every change after revision 0, as "fromRevision": 0
// gives a subscribe; without the parameter it starts from now.
func TestWS_TokenResumesFromZero(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(`{"subscribeKeys":["a","b"]}`)
	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "a"})["code"])
	c.ws.Close(websocket.StatusNormalClosure, "")
	must(f.db.Set("a", "while away", nil))
	c = f.dial("token=" + url.QueryEscape(tok) + "&fromRevision=0")
	require.Equal(t, "while away", c.note()["value"])
	now := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 200.0, now.call(m{"op": 1, "key": "a"})["code"])
	must(f.db.Set("b", "later", nil))
	require.Equal(t, "b", now.note()["key"], "from now: nothing before")
}

// TestWS_TokenSubscriptionEndCloses: a token's own subscription that
// falls behind the history ends, and its client, which has no id to be
// told of that by, is not left on a silent connection: it gets the 410,
// then the connection closes with 1013 (try again later), to be made
// again.
func TestWS_TokenSubscriptionEndCloses(t *testing.T) {
	// The client reads nothing until its subscription has ended: it is
	// not closed as a slow client (1008) meanwhile, however long that is.
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, HistoryEvents: 8}, &adapter.Options{SlowClientTimeout: time.Minute})
	tok := f.token(`{"subscribePatterns":["k:*"]}`)
	c := f.dial("token=" + url.QueryEscape(tok))
	require.Equal(t, 404.0, c.call(m{"op": 1, "key": "none"})["code"]) // the connection is up, its subscription made
	// Writes until the subscription has fallen behind the history. No
	// number fixed beforehand does it: a connection that keeps up with
	// the writer takes them all, into the subscription's buffer, the send
	// queue and the socket's buffers (some MB). The client reads nothing,
	// so once those are full it falls behind.
	for i := 0; f.db.Stats().Subscriptions.Compacted == 0; i += 100 {
		require.Less(t, i, 1_000_000, "the subscription never fell behind")
		for j := i; j < i+100; j++ {
			must(f.db.Set(fmt.Sprintf("k:%d", j%50), fmt.Sprint(j), nil))
		}
	}
	for {
		msg := c.read()
		if msg["type"] == "notification" {
			continue
		}
		require.Equal(t, 410.0, msg["code"], "%v", msg)
		break
	}
	require.Equal(t, websocket.StatusTryAgainLater, c.closeStatus())
}

// TestWS_ResumeCompacted: resuming from before the history gets 410 with
// the oldest revision still held, not a silent gap.
func TestWS_ResumeCompacted(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1, HistoryEvents: 5})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(t, err)
	f := &fixture{t: t, db: db, a: a}
	f.serve()
	for i := 0; i < 50; i++ {
		_, err := db.Set("k", fmt.Sprint(i), nil)
		require.NoError(t, err)
	}
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{"k"}, "fromRevision": 2})
	require.Equal(t, 410.0, r["code"], "%v", r)
	require.Greater(t, r["oldest"], 2.0)

	// A token connection resuming from too far back is told so before it
	// is closed.
	tok := f.token(`{"subscribeKeys":["k"]}`)
	tc := f.dial("token=" + url.QueryEscape(tok) + "&fromRevision=2")
	r = tc.read()
	require.Equal(t, 410.0, r["code"], "%v", r)
	require.Greater(t, r["oldest"], 2.0)
	require.Equal(t, websocket.StatusPolicyViolation, tc.closeStatus())
}

// TestWS_TokenResumeFromAheadCloses: a token connection whose own
// subscriptions cannot start (fromRevision past the store's newest) gets
// the 410 and then a close frame with 1008, not a dropped connection,
// although the error's text is longer than a close frame's reason may be.
func TestWS_TokenResumeFromAheadCloses(t *testing.T) {
	f := newFixture(t, nil)
	must(f.db.Set("a", "1", nil))
	for path, param := range map[string]string{"/ws": "token", "/dbx/ws": "api_key"} {
		tok := f.token(`{"subscribeKeys":["a"]}`)
		ws, _, err := f.dialPath(path, param+"="+url.QueryEscape(tok)+"&fromRevision=5", nil)
		require.NoError(t, err, path)
		c := &client{t: t, ws: ws}
		t.Cleanup(func() { ws.CloseNow() })
		r := c.read()
		require.Contains(t, fmt.Sprint(r), "the newest is 1", path)
		require.Equal(t, websocket.StatusPolicyViolation, c.closeStatus(), path)
	}
}

// TestWS_TokenExpiryNotifiesNothingAfter: a connection whose token
// expires while writes stream, its client reading behind them, is sent
// what was queued before, and no notification of a write committed once
// it is closing. Before, the forwarders went on queuing for as long as
// the close waited for the queue to drain (up to a second): the client
// went on being told of writes after its token had expired.
func TestWS_TokenExpiryNotifiesNothingAfter(t *testing.T) {
	var offset atomic.Int64 // the token clock's lead on the real one
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f := newFixture(t, &adapter.Options{Now: now, MaxQueuedBytes: 256 << 10, SlowClientTimeout: time.Minute})
	code, body := f.rest("POST", "/token/websocket", apiKey, `{"subscribePatterns":["n:*"]}`)
	require.Equal(t, 200, code, "%v", body)
	expires, err := time.Parse(time.RFC3339, body["expiresAt"].(string))
	require.NoError(t, err)
	offset.Store(int64(time.Until(expires.Add(-300 * time.Millisecond)))) // it expires in 300ms
	c := f.dialSlow("token="+url.QueryEscape(body["token"].(string)), 4<<20)

	// Writes stream faster than the client reads, until 20 have been
	// committed after the connection began to close.
	value := strings.Repeat("v", 16<<10)
	first := -1 // the first write committed once it was closing
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; first < 0 || i < first+20; i++ {
		require.True(t, time.Now().Before(deadline), "the connection never began to close")
		if first < 0 && adapter.Failing(f.a) {
			first = i
		}
		_, err := f.db.Set(fmt.Sprintf("n:%d", i), value, nil)
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	notified := 0
	for {
		n, err := c.tryRead(10 * time.Second)
		if err != nil {
			require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "%v", err)
			break
		}
		var i int
		_, err = fmt.Sscanf(n["key"].(string), "n:%d", &i)
		require.NoError(t, err)
		require.Less(t, i, first, "a write committed after the connection began to close is notified")
		notified++
	}
	require.Positive(t, notified, "what was queued before is sent")
}
