package cluster

import (
	"fmt"
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
