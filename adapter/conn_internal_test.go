package adapter

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSend_WaitsSlowClientTimeoutInAll: a message that waits for room in
// the byte budget, and then for a place in the send queue, waits
// SlowClientTimeout in all before its client is closed as slow, not that
// long for each.
func TestSend_WaitsSlowClientTimeoutInAll(t *testing.T) {
	// Room comes at 6/10 of the timeout: in all the send takes the
	// timeout, twice waited 16/10 of it; the bound between, at 13/10,
	// leaves 0.6 s either way for a loaded machine's scheduling.
	const timeout = 2 * time.Second
	a := &Adapter{opts: Options{SlowClientTimeout: timeout, Logf: func(string, ...any) {}}}
	c := &conn{a: a, out: make(chan []byte, 1), budget: newByteBudget(100),
		closed: true} // closed: failing it starts no close handshake
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	_, _, err := c.budget.acquire(c.ctx, 100, timeout) // the budget is full
	require.NoError(t, err)
	c.out <- []byte(`{}`) // and so is the queue
	start := time.Now()
	done := make(chan bool)
	go func() { done <- c.send(map[string]string{"k": "v"}) }()
	time.Sleep(timeout * 6 / 10)
	// Room in the budget, as when a message is encoded shorter than its
	// bound: the queue is still full.
	c.budget.release(100)
	require.False(t, <-done)
	require.Less(t, time.Since(start), timeout*13/10, "waited SlowClientTimeout in the budget, then again in the queue")
	require.EqualValues(t, 1, a.stats.slowClosed.Load())
}
