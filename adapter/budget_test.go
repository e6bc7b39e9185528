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
