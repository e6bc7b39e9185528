package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

// TestTransfer_LateRestartLeavesLaterStint: a request that a leader take
// writes anew names the stint it is about. One about a stint that has
// ended since (a failed transfer's caller, or raft's late refusal of an
// entry, may make it after the next stint started) must leave the later
// stint alone, whose writers would otherwise be told that their writes
// did not commit; one about the latest stint must start another.
func TestTransfer_LateRestartLeavesLaterStint(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	_, err := c.node(c.leader()).Set("k", "1", nil)
	require.NoError(t, err)

	// Each check runs again on the next leader should an election come
	// in between (onSteadyLeader): it would start a stint of its own.
	var stint, stintAfter, gen, genAfter uint64
	c.onSteadyLeader(func(li int) {
		rep := c.node(li).rep
		stint, gen = rep.accepting.Load(), rep.gen.Load()
		rep.askRestart(gen - 1) // about the stint before this one
		// The node acts on a request within a few milliseconds, if at all.
		time.Sleep(200 * time.Millisecond)
		stintAfter, genAfter = rep.accepting.Load(), rep.gen.Load()
	})
	require.NotZero(t, stint)
	require.NotZero(t, gen)
	require.Equal(t, stint, stintAfter, "a request about an ended stint ended the one after it")
	require.Equal(t, gen, genAfter)

	var started bool
	li := c.onSteadyLeader(func(li int) {
		rep := c.node(li).rep
		stint, gen = rep.accepting.Load(), rep.gen.Load()
		rep.askRestart(gen)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if s := rep.accepting.Load(); s != 0 && s != stint && rep.gen.Load() > gen {
				started = true
				return
			}
		}
	})
	require.True(t, started, "a request about the latest stint started no other")
	_, err = c.node(li).Set("k", "2", nil)
	require.NoError(t, err)
}

// TestTransfer_ForwardedWaitWithinWhatIsLeft: a leader between stints
// holds a forwarded write at most half of what the forwarding node said
// it still waits (and 250 ms when it said nothing), then refuses it as
// not the leader, having done nothing: a write taken later could commit
// after the forwarding node gave up, which would leave its writer
// uncertain.
func TestTransfer_ForwardedWaitWithinWhatIsLeft(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	forward := func(n *Node, left time.Duration) (time.Duration, error) {
		start := time.Now()
		resp := n.handle(&rpcRequest{Op: opSet, Key: "k", Value: "v", Left: left})
		return time.Since(start), resp.err()
	}
	var short, long time.Duration
	var shortErr, longErr error
	l := c.onSteadyLeader(func(li int) {
		n := c.node(li)
		n.rep.endStint("a test holds the leader between stints")
		short, shortErr = forward(n, 40*time.Millisecond)
		long, longErr = forward(n, 0)
		n.rep.askRestart(n.rep.gen.Load())
	})
	require.ErrorIs(t, shortErr, ErrNotLeader)
	require.Less(t, short, forwardedWait-50*time.Millisecond, "held past what the forwarding node waits")
	require.ErrorIs(t, longErr, ErrNotLeader)
	require.GreaterOrEqual(t, long, forwardedWait, "refused before the wait for a node that said nothing")

	_, err := c.node((l+1)%3).Set("k", "v", nil)
	require.NoError(t, err)
	for i := range c.nodes {
		it, err := c.node(i).Get("k")
		require.NoError(t, err)
		require.Equal(t, "v", it.Value)
	}
}

func testTransferWriters(t *testing.T, slow bool) {
	c := newDBCluster(t, 3, nil)
	c.leader()
	c.slowHandoff.Store(slow)

	w := newWriteLog()
	var turn atomic.Int64
	stop := make(chan struct{})
	wg := writers(4, w, func() *Node { return c.node(int(turn.Add(1) % 3)) }, stop)
	var selfNamed atomic.Value // the first NotLeaderError a node gave naming itself
	uwg := updaters(2, w, c, stop, &selfNamed)
	var once sync.Once
	halt := func() {
		once.Do(func() { close(stop) })
		wg.Wait()
		uwg.Wait()
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
	require.Nil(t, selfNamed.Load(), "a leader refused a transaction as not the leader, naming itself")
}

// updaters runs k writers that set fresh keys in transactions (Update,
// which only the leader runs), each through the nodes in turn, until
// stop closes. A node that does not lead answers with a *NotLeaderError
// naming another node, or none, and does nothing: those are not
// recorded. One that names the node itself, which a leader between two
// stints of writes did, is kept in selfNamed.
func updaters(k int, w *writeLog, c *dbCluster, stop chan struct{}, selfNamed *atomic.Value) *sync.WaitGroup {
	return runWriters(k, stop, time.Millisecond, func(g int64, seq int) error {
		i := seq % len(c.founders)
		key := fmt.Sprintf("u/%d/%d", g, seq)
		rev, err := c.node(i).Update(func(tx *engine.Tx) error {
			_, err := tx.Set(key, key, nil)
			return err
		})
		var nl *NotLeaderError
		switch {
		case errors.As(err, &nl) && nl.ID == c.peers[i].ID:
			selfNamed.CompareAndSwap(nil, fmt.Errorf("node %d: %w", i, err))
		case errors.As(err, &nl):
		default:
			w.record(key, rev, err)
		}
		return err
	})
}

// TestTransfer_ToANonVoterIsRefused: a non-voter (a node catching up
// as it joins) cannot lead: a transfer to it is refused as invalid, and
// leadership stays where it is. raft would send it TimeoutNow all the
// same; its vote request, of a higher term, deposes the leader, while
// the voters refuse it their votes. The refusal comes before raft is
// asked anything: the transfer would first end the leader's lease, as
// noLease records. (Whether an election follows is not checked: on a
// loaded machine one may come for reasons of its own.)
func TestTransfer_ToANonVoterIsRefused(t *testing.T) {
	c := newListNodes(t, 3, 1)
	l := c.leader()
	c.open(3, nil, nil) // fresh: its raft waits for the leader
	n3 := c.nodes[3]
	require.NoError(t, n3.askJoin(ctxT(t), []string{c.net.Addr(l)}, &rpcRequest{Op: opJoin, ID: n3.ID(), Addr: n3.Addr(), Fresh: true}))
	n3.mux.openRaft()
	require.Eventually(t, func() bool { return n3.Status().Applied >= c.nodes[l].Status().Applied }, 10*time.Second, time.Millisecond)
	for _, s := range c.nodes[l].Status().Servers {
		if s.ID == n3.ID() {
			require.False(t, s.Voter)
		}
	}
	term := c.nodes[l].Status().Term
	errLeader := c.nodes[l].TransferLeadership(ctxT(t), n3.ID())
	errFollower := c.nodes[(l+1)%3].TransferLeadership(ctxT(t), n3.ID())
	t.Logf("on the leader: %v; on a follower: %v", errLeader, errFollower)
	require.ErrorIs(t, errLeader, ErrInvalidOptions)
	require.ErrorIs(t, errFollower, ErrInvalidOptions)
	require.NotEqual(t, term, c.nodes[l].noLease.Load(), "raft was asked to hand leadership on")
	require.True(t, c.nodes[l].IsLeader(), "leadership stays")
}

// TestTransfer_ErrorsAreTyped: a transfer that cannot be made fails with
// this package's errors, on the leader and forwarded from a follower,
// never with raft's bare strings. The only voter has no one to hand
// leadership to (ErrInvalidOptions, and so its Leave); a transfer to a
// voter cut off from the leader times out (ErrUncertain: the voter may
// yet be told to stand); one asked while another runs is refused as the
// leader hands leadership on (ErrNoLeader, so that a follower forwarding
// it waits for the next leader).
func TestTransfer_ErrorsAreTyped(t *testing.T) {
	typed := func(t *testing.T, err error, want ...error) {
		t.Helper()
		require.Error(t, err)
		require.Regexp(t, "^cluster: ", err.Error())
		require.True(t, slices.ContainsFunc(want, func(w error) bool { return errors.Is(err, w) }), "%v is none of %v", err, want)
	}
	t.Run("one voter", func(t *testing.T) {
		c := newListNodes(t, 1, 0)
		typed(t, c.nodes[0].TransferLeadership(ctxT(t), ""), ErrInvalidOptions)
		typed(t, c.nodes[0].Leave(ctxT(t)), ErrInvalidOptions)
		require.True(t, c.nodes[0].IsLeader())
	})
	t.Run("cut off", func(t *testing.T) {
		c := newListNodes(t, 3, 0)
		l := c.leader()
		to, f := (l+1)%3, (l+2)%3
		id := c.nodes[to].ID()
		// The leader's messages to the target are swallowed: the
		// transfer's TimeoutNow hangs until raft's I/O timeout, and raft
		// refuses other transfers until it returns.
		c.net.Link(l, to).SetDrop(true)
		defer c.net.Heal()
		first := make(chan error, 1)
		go func() { first <- c.nodes[l].TransferLeadership(ctxT(t), id) }()
		var refused error
		require.Eventually(t, func() bool {
			err := c.nodes[l].TransferLeadership(ctxT(t), id)
			if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
				refused = err
				return true
			}
			return false
		}, 10*time.Second, time.Millisecond, "no transfer refused while another ran")
		typed(t, refused, ErrNoLeader)
		typed(t, <-first, ErrUncertain, ErrNoLeader)
		// Forwarded while the leader refuses: the follower waits for a
		// leader that takes it, until its time runs out.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := c.nodes[f].TransferLeadership(ctx, id)
		typed(t, err, ErrUncertain, ErrNoLeader)
	})
}
