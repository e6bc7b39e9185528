package adapter_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// bigValues stores n keys big:0000... whose values are one shared string
// of nearly 1 MiB, so that the DB itself stays small.
func bigValues(t *testing.T, db *engine.DB, n int) {
	t.Helper()
	v := strings.Repeat("x", 1<<20-1024)
	for i := 0; i < n; i++ {
		_, err := db.Set(fmt.Sprintf("big:%04d", i), v, nil)
		require.NoError(t, err)
	}
}

// replyBytes returns the bytes of the keys and values of a range reply.
func replyBytes(r map[string]any) int {
	n := 0
	for _, rec := range r["records"].([]any) {
		rec := rec.(map[string]any)
		n += len(rec["key"].(string)) + len(rec["value"].(string))
	}
	return n
}

// TestWS_ReplyBudget: eight concurrent ranges over 1,000 values of 1 MiB
// on one connection each return at most MaxReplyBytes (2 MiB) and say
// truncated, and the bytes held for the connection never pass
// MaxQueuedBytes (8 MiB).
func TestWS_ReplyBudget(t *testing.T) {
	f := newFixture(t, nil)
	bigValues(t, f.db, 1000)
	c := f.dial("apiKey=" + apiKey)
	for i := 1; i <= 8; i++ {
		c.write(m{"op": 5, "key": "big:", "endKey": "big:~", "limit": 1000, "messageId": i})
	}
	for i := 0; i < 8; i++ {
		r := c.read()
		require.Equal(t, 200.0, r["code"])
		require.Equal(t, true, r["truncated"])
		require.Positive(t, r["count"])
		require.LessOrEqual(t, replyBytes(r), 2<<20)
	}
	peak := f.a.Stats().PeakQueuedBytes
	require.Positive(t, peak)
	require.LessOrEqual(t, peak, int64(8<<20))
	t.Logf("peak queued: %d bytes", peak)

	// The first record always comes, however small the cap.
	g := newFixture(t, &adapter.Options{MaxReplyBytes: 10})
	bigValues(t, g.db, 3)
	r := g.dial("apiKey=" + apiKey).call(m{"op": 5, "key": "big:", "limit": 10})
	require.Equal(t, 1.0, r["count"])
	require.Equal(t, true, r["truncated"])
	code, got := g.rest("GET", "/records?startKey=big:&limit=10", apiKey, "")
	require.Equal(t, 200, code)
	require.Equal(t, 1.0, got["count"], "REST ranges have the same cap")
}

// TestWS_ReplyBudget_SlowClient: a client that sends many large ranges
// and reads nothing is closed as a slow client once its budget has stayed
// full for SlowClientTimeout, and what it was owed never passed the budget.
// It is counted once in SlowClosed (livekv_adapter_slow_closed_total),
// however many of the senders waiting for room found it slow.
func TestWS_ReplyBudget_SlowClient(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxQueuedBytes: 4 << 20, SlowClientTimeout: 300 * time.Millisecond})
	bigValues(t, f.db, 100)
	c := f.dial("apiKey=" + apiKey)
	for i := 1; i <= 64; i++ {
		c.write(m{"op": 5, "key": "big:", "limit": 100, "messageId": i})
	}
	require.Eventually(t, func() bool { return f.a.Stats().SlowClosed >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 0 }, 10*time.Second, 10*time.Millisecond)
	require.LessOrEqual(t, f.a.Stats().PeakQueuedBytes, int64(4<<20))
	time.Sleep(2 * 300 * time.Millisecond) // the senders' timeouts that came after the first
	require.Equal(t, int64(1), f.a.Stats().SlowClosed)
}

// TestWS_SlowSubscriberHoldsLittle: the events a subscription has not
// sent yet, for a client that does not read, hold no more than the
// connection's byte budget and a value or two per subscription; the rest
// waits in the change history, shared by every subscriber. Before, each
// subscription of the connection took up to 256 events from the history
// into a buffer of its own, keeping their values alive after the history
// had let them go: four subscriptions of a client that read nothing held
// 76 MiB of 64 KiB values, with a budget of 256 KiB and a history of
// 256 KiB.
func TestWS_SlowSubscriberHoldsLittle(t *testing.T) {
	const (
		subs    = 4
		writes  = 300
		valueSz = 64 << 10
		budget  = 256 << 10
		history = 256 << 10
	)
	f := newFixtureDB(t, &engine.Options{SweepInterval: -1, HistoryBytes: history},
		&adapter.Options{MaxQueuedBytes: budget, SlowClientTimeout: 20 * time.Second})
	c := f.dial("apiKey=" + apiKey)
	for i := range subs {
		require.Equal(t, 200.0, c.call(m{"op": 100, "patterns": []string{fmt.Sprint("k", i)}})["code"])
	}
	before := heapInUse()
	for j := range writes {
		for i := range subs {
			// A value of its own each time, which the history lets go.
			v := strings.Repeat(string(rune('a'+j%26)), valueSz) + fmt.Sprint(j)
			_, err := f.db.Set(fmt.Sprint("k", i), v, nil)
			require.NoError(t, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the forwarders take what they will
	grew := heapInUse() - before
	// The budget (and the encoding's working buffers), the history, and
	// two values per subscription, with room for the rest of the process.
	bound := int64(3*budget + history + subs*2*valueSz + 8<<20)
	require.Less(t, grew, bound, "heap grew %.1f MiB, bound %.1f MiB", float64(grew)/(1<<20), float64(bound)/(1<<20))
	c.ws.CloseNow()
}

// TestWS_ClosingConnectionRunsNoMore: a connection being closed for
// cause (here a client that reads nothing; an expired token, a dead peer
// alike) runs none of the requests that arrive while its close handshake
// waits, which may take a second or two.
func TestWS_ClosingConnectionRunsNoMore(t *testing.T) {
	f := newFixture(t, &adapter.Options{MaxQueuedBytes: 4 << 20, SlowClientTimeout: 300 * time.Millisecond})
	bigValues(t, f.db, 100)
	c := f.dial("apiKey=" + apiKey)
	for i := 1; i <= 64; i++ {
		c.write(m{"op": 5, "key": "big:", "limit": 100, "messageId": i})
	}
	require.Eventually(t, func() bool { return f.a.Stats().SlowClosed >= 1 }, 10*time.Second, 10*time.Millisecond)
	// The socket is full one way only: the request goes through.
	c.write(m{"op": 2, "key": "after", "value": "v", "messageId": 100})
	require.Eventually(t, func() bool { return f.a.Stats().Connections == 0 }, 10*time.Second, 10*time.Millisecond)
	_, err := f.db.Get("after")
	require.ErrorIs(t, err, engine.ErrNotFound, "written by a connection being closed")
}
