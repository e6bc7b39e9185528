package cluster

import (
	"time"

	"testing"

	"github.com/stretchr/testify/require"
)

func TestRemote_StatusTransferRemove(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	r := NewRemote(c.nodes[f].Addr()) // the test network's listener, reached directly
	defer r.Close()
	s, err := r.Status(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, c.nodes[f].ID(), s.ID)
	require.Equal(t, c.nodes[l].ID(), s.LeaderID)
	require.Len(t, s.Servers, 3)

	// Asked of a follower, both go to the leader.
	require.NoError(t, r.TransferLeadership(ctxT(t), c.nodes[f].ID()))
	require.Equal(t, f, c.leader())
	other := (l + 2) % 3
	require.NoError(t, r.RemoveServer(ctxT(t), c.nodes[other].ID()))
	require.Eventually(t, func() bool { return len(c.nodes[f].Status().Servers) == 2 }, 5*time.Second, 5*time.Millisecond)
}
