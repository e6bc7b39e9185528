package cluster

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
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

	const writers = 4
	type result struct {
		key string
		err error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	var once sync.Once
	halt := func() {
		once.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(halt) // before the nodes close, should a check fail
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, k)
				_, err := c.node((w+k)%3).Set(key, "v", nil)
				mu.Lock()
				results = append(results, result{key, err})
				mu.Unlock()
			}
		}()
	}
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.err == nil {
				n++
			}
		}
		return n
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
	c.converged()
	var ok, refused int
	for _, r := range results {
		switch {
		case r.err == nil:
			ok++
			for i := range c.nodes {
				it, err := c.node(i).Get(r.key, Stale)
				require.NoError(t, err, "acknowledged %s, node %d", r.key, i)
				require.Equal(t, "v", it.Value)
			}
		case errors.Is(r.err, ErrNotCommitted):
			refused++
			for i := range c.nodes {
				_, err := c.node(i).Get(r.key, Stale)
				require.ErrorIs(t, err, engine.ErrNotFound, "%s refused as not committed (%v), node %d", r.key, r.err, i)
			}
		default:
			// Among them ErrUncertain, and ErrNotLeader or ErrNoLeader
			// (a write that found no leader to take it within the write
			// timeout).
			t.Errorf("write %s: %v", r.key, r.err)
		}
	}
	t.Logf("writes: %d, acknowledged %d, not committed %d", len(results), ok, refused)
}
