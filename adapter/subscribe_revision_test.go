package adapter_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The subscribe reply's revision is the one the subscription starts after:
// every notification of the subscription is of a later revision, though
// writers run while it starts.
func TestSubscribe_ReplyRevisionBeforeEveryNotification(t *testing.T) {
	f := newFixture(t, nil)
	must(f.db.Set("k:1", "v", nil)) // read below, maybe before the writer gets to it
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			must(f.db.Set(fmt.Sprintf("k:%d", i%100), "v", nil))
			time.Sleep(20 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	c := f.dial("apiKey=" + apiKey)
	for i := 0; i < 200; i++ {
		c.next++
		id := float64(c.next)
		c.write(m{"op": 100, "patterns": []string{"k:*"}, "messageId": c.next})
		var early []map[string]any
		var rep map[string]any
		for rep == nil {
			msg := c.read()
			if msg["messageId"] == id {
				rep = msg
			} else {
				early = append(early, msg)
			}
		}
		require.Equal(t, 200.0, rep["code"], "%v", rep)
		sub, rev := rep["subscriptionId"], rep["revision"].(float64)
		for _, n := range early {
			if n["subscriptionId"] == sub {
				require.Greater(t, n["revision"].(float64), rev, "subscription %v: reply revision %v, but a notification of revision %v came", sub, rev, n["revision"])
			}
		}
		c.notes = nil
		r := c.call(m{"op": 1, "key": "k:1"})
		require.Equal(t, 200.0, r["code"], "%v", r)
		for _, n := range c.notes {
			if n["subscriptionId"] == sub {
				require.Greater(t, n["revision"].(float64), rev, "subscription %v: reply revision %v, but a notification of revision %v came after", sub, rev, n["revision"])
			}
		}
		c.notes = nil
		r = c.call(m{"op": 101, "subscriptionId": sub})
		require.Equal(t, 200.0, r["code"], "%v", r)
		c.notes = nil
	}
}

// TestSubscribe_ReplyRevisionZero: on a store at revision 0 the subscribe
// reply carries "revision": 0, which a client resumes from after losing
// its connection, so the change made while it was away is notified.
// Before, revision 0 was left out of the reply: a client that resumed
// with the reply's revision sent none, subscribed from now, and lost
// that change.
func TestSubscribe_ReplyRevisionZero(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial("apiKey=" + apiKey)
	r := c.call(m{"op": 100, "patterns": []string{"k*"}})
	require.Equal(t, 200.0, r["code"], "%v", r)
	require.Contains(t, r, "revision", "subscribe reply: %v", r)
	last := r["revision"] // the revision the subscription starts after
	u := c.call(m{"op": 101, "subscriptionId": r["subscriptionId"]})
	require.Equal(t, 200.0, u["code"], "%v", u)
	require.NotContains(t, u, "revision", "an unsubscribe reply carries none: %v", u)
	c.ws.CloseNow() // connection lost before the first change

	must(f.db.Set("k1", "made while away", nil))

	c2 := f.dial("apiKey=" + apiKey)
	r2 := c2.call(m{"op": 100, "patterns": []string{"k*"}, "fromRevision": last})
	require.Equal(t, 200.0, r2["code"], "%v", r2)
	n, err := c2.tryRead(time.Second)
	require.NoError(t, err, "the change after the subscription's revision is lost (first reply %v)", r)
	require.Equal(t, "k1", n["key"])
}
