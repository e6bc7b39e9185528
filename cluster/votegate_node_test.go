package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// founders are the founding peers of c's three founders.
func founders(c *listNodes) []Peer {
	var peers []Peer
	for i := range 3 {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: c.net.Addr(i)})
	}
	return peers
}

// A whole-cluster restart, l's machine down: f1, which has state, answers
// not_leader while it starts, and l nothing. Only answers with a status
// count: the gate stays up. Before, a starting or silent founder counted
// as one that had not run, the gate was lifted, f1 won and X was lost.
func TestNode_WipedFounderIsNotLiftedByAStartingPeer(t *testing.T) {
	c := newListNodes(t, 3, 0)
	peers := founders(c)
	l, f1, f2 := c.folderLostWhileOneLagged()
	require.NoError(t, c.nodes[f1].Close())
	c.nodes[f1] = nil

	type opened struct {
		n   *Node
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		n, err := c.openErr(f1, nil, nil)
		ch <- opened{n, err}
	}()
	time.Sleep(50 * time.Millisecond) // f1 listens, answers not_leader
	c.open(f2, peers, nil)
	_, perr := c.nodes[f2].rpc.call(ctxT(t), c.net.Addr(f1), &rpcRequest{Op: opStatus})
	t.Logf("f1 answers a status request while starting: %v", perr)
	o := <-ch
	require.NoError(t, o.err)
	c.nodes[f1] = o.n
	time.Sleep(1500 * time.Millisecond)
	assert.False(t, c.nodes[f2].rn.gate.open.Load(), "gate lifted in a cluster that has run")
	c.open(l, nil, nil)
	nl := c.leader()
	require.Contains(t, c.fsms[nl].list(), []byte("X"), "a committed entry was lost; the leader is n%d", nl)
}

// TestNode_WipedFounderRestartedBeforeCatchingUpStillWaits: the wiped
// founder of TestNode_WipedFounderVotesOnlyOnceCaughtUp restarts again
// before it has caught up. Its folder now holds the founding
// configuration: before, it voted freely from then on, f1 won with its
// vote, and X was lost.
func TestNode_WipedFounderRestartedBeforeCatchingUpStillWaits(t *testing.T) {
	c := newListNodes(t, 3, 0)
	peers := founders(c)
	l, f1, f2 := c.folderLostWhileOneLagged()
	c.open(f2, peers, nil)
	require.Eventually(t, func() bool {
		v, err := c.nodes[f2].rn.store.GetUint64(keyVoteGate)
		return err == nil && v == 1
	}, 10*time.Second, time.Millisecond, "f2 keeps its gate on disk: f1 answers that the cluster has run")
	require.NoError(t, c.nodes[f2].Close())
	c.open(f2, nil, nil)

	require.Never(t, func() bool { return c.nodes[f1].IsLeader() || c.nodes[f2].IsLeader() },
		2*time.Second, 5*time.Millisecond, "f1 campaigns; it wins only with the wiped node's vote")
	c.open(l, nil, nil)
	nl := c.leader()
	require.Contains(t, c.fsms[nl].list(), []byte("X"), "a committed entry was lost; the leader is n%d", nl)
	require.Eventually(t, func() bool {
		v, err := c.nodes[f2].rn.store.GetUint64(keyVoteGate)
		return c.nodes[f2].rn.gate.open.Load() && err == nil && v == 0
	}, 10*time.Second, time.Millisecond, "caught up, f2 clears its gate")

	// Restarted once more, it votes freely: with the leader gone, it and
	// the other elect one.
	require.NoError(t, c.nodes[f2].Close())
	c.open(f2, nil, nil)
	require.Nil(t, c.nodes[f2].rn.gate, "the gate is up again")
	require.NoError(t, c.nodes[nl].Close())
	c.nodes[nl] = nil
	require.Contains(t, c.fsms[c.leader()].list(), []byte("X"))
}

// TestNode_WipedFounderCaughtUpBySnapshotVotes: a wiped founder that
// catches up by installing the leader's snapshot, with no write after
// it, holds the entry at the leader's commit index in that snapshot, not
// in its log. That is the evidence of its catching up while it cannot
// serve (here the leader confirms no read index): before, the gate
// looked for the entry in the log alone and stayed up.
func TestNode_WipedFounderCaughtUpBySnapshotVotes(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	c.snapThreshold, c.trailing = 20, 5
	for i := range c.nodes { // again, with the small log limits
		c.stop(i)
		c.start(i)
	}
	c.caughtUp()
	l := c.leader()
	f := (l + 1) % 3
	for k := range 60 {
		_, err := c.nodes[l].Set(fmt.Sprintf("a%d", k), "v", nil)
		require.NoError(t, err)
	}
	require.NoError(t, c.nodes[l].rn.raft.Snapshot().Error()) // of every entry: the log is trimmed
	c.kill(f)
	require.NoError(t, os.RemoveAll(filepath.Join(c.dir, c.peers[f].ID)))

	var stalled atomic.Bool
	stalled.Store(true)
	defer stalled.Store(false)
	stall := func(i int) {
		for i == l && stalled.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	c.readStall.Store(&stall)
	defer c.readStall.Store(nil)
	c.restart(f)
	n := c.node(f)
	require.NotNil(t, n.rn.gate)
	require.Eventually(t, func() bool { return n.rn.snapsWritten.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the leader sends its snapshot")
	require.Eventually(t, n.rn.gate.open.Load, 10*time.Second, time.Millisecond,
		"caught up by the snapshot, the node still gates its vote")
	require.False(t, n.served.Load(), "the node served: the test shows nothing")
}
