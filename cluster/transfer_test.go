package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTransfer_WritersLearnAtOnce runs writers on every node while
// leadership is handed on several times, and then, two at a time, to a
// node cut off so that the transfers fail. Raft refuses the entries
// proposed while a transfer is in progress: their writers must learn at
// once that the write did not commit (never "uncertain", nor "no
// leader", which wait out the write timeout), and a leader whose
// transfer failed must take writes again. Every acknowledged write is
// then on every node, and no write refused as not committed is anywhere.
// With a slow handoff, every entry waits between its packing and raft,
// so that one packed as a stint ends reaches raft late: the stint that
// follows must not start before it is applied or refused.
func TestTransfer_WritersLearnAtOnce(t *testing.T) {
	t.Run("prompt", func(t *testing.T) { testTransferWriters(t, false) })
	t.Run("slow handoff", func(t *testing.T) { testTransferWriters(t, true) })
}

func testTransferWriters(t *testing.T, slow bool) {
	c := newDBCluster(t, 3, nil)
	c.leader()
	c.slowHandoff.Store(slow)

	w := newWriteLog()
	var turn atomic.Int64
	stop := make(chan struct{})
	wg := writers(4, w, func() *Node { return c.node(int(turn.Add(1) % 3)) }, stop)
	var once sync.Once
	halt := func() {
		once.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(halt) // before the nodes close, should a check fail
	acked := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked)
	}
	// ackedSince waits for more writes acknowledged than before.
	ackedSince := func(before int, why string) {
		require.Eventually(t, func() bool { return acked() > before+10 }, 10*time.Second, time.Millisecond, why)
	}

	ackedSince(0, "no write acknowledged at the start")
	for range 4 {
		l := c.leader()
		require.NoError(t, c.node(l).TransferLeadership(ctxT(t), ""))
		ackedSince(acked(), "no write acknowledged after a transfer")
	}

	// A transfer to a node the leader cannot reach fails; the leader
	// keeps leading, and takes writes again. Two at once, as a Leave
	// beside a TransferLeadership may ask: raft refuses the second at
	// once, and the leader may lead again while the first still runs.
	for round := range 3 {
		var failed bool
		for attempt := 0; !failed; attempt++ {
			require.Less(t, attempt, 5, "the transfers to a cut-off node never failed")
			l := c.leader()
			target := (l + 1) % 3
			c.net.Link(l, target).Cut()
			errs := make([]error, 2)
			var tw sync.WaitGroup
			for i := range errs {
				tw.Add(1)
				go func() {
					defer tw.Done()
					errs[i] = c.node(l).TransferLeadership(ctxT(t), c.peers[target].ID)
				}()
			}
			tw.Wait()
			c.net.Link(l, target).Heal()
			failed = errs[0] != nil && errs[1] != nil && c.leader() == l
			t.Logf("round %d: transfers to a cut-off node: %v; %v", round, errs[0], errs[1])
			ackedSince(acked(), "no write acknowledged after a failed transfer")
		}
	}

	halt()
	w.settle(t, c) // every acknowledged write everywhere, no refused one anywhere
	// Refused at once as not committed: not uncertain, nor refused as
	// not the leader or no leader (a write that found no leader to take
	// it within the write timeout).
	require.Empty(t, w.unknown)
	for k, err := range w.refused {
		require.ErrorIs(t, err, ErrNotCommitted, "write %s", k)
	}
}
