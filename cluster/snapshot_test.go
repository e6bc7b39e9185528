package cluster

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSnapshot_FollowerBehindTheLogCatchesUpBySnapshot keeps a follower
// down while the leader snapshots and trims its log: on restart it can
// only catch up by installing the snapshot, an engine snapshot streamed
// over raft, then the entries after it.
func TestSnapshot_FollowerBehindTheLogCatchesUpBySnapshot(t *testing.T) {
	forEachStore(t, testSnapshotFollowerBehindTheLog)
}

func testSnapshotFollowerBehindTheLog(t *testing.T, store LogStore) {
	c := newDBClusterOn(t, store, 3, nil)
	c.snapThreshold, c.trailing = 20, 5
	for i := range c.nodes { // again, with the small log limits
		c.stop(i)
		c.start(i)
	}
	l := c.leader()
	f := (l + 1) % 3
	for k := range 30 {
		_, err := c.nodes[l].Set(fmt.Sprintf("a%d", k), "v", nil)
		require.NoError(t, err)
	}
	c.kill(f)
	for k := range 100 {
		_, err := c.nodes[l].Set(fmt.Sprintf("b%d", k), fmt.Sprint(k), nil)
		require.NoError(t, err)
	}
	_, err := c.nodes[l].Delete("a3")
	require.NoError(t, err)
	require.NoError(t, c.nodes[l].rn.raft.Snapshot().Error())
	for k := range 5 {
		_, err := c.nodes[l].Set(fmt.Sprintf("c%d", k), "after", nil)
		require.NoError(t, err)
	}
	c.restart(f)
	c.converged()
	it, err := c.nodes[f].Get("c4", Read(Stale, MinRevision(c.nodes[l].Revision())))
	require.NoError(t, err)
	require.Equal(t, "after", it.Value)

	// Every node restarts from its own snapshot and log.
	for i := range c.nodes {
		require.NoError(t, c.nodes[i].rn.raft.Snapshot().Error())
	}
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	l = c.leader()
	_, err = c.nodes[l].Set("d", "after restart", nil)
	require.NoError(t, err)
	c.converged()
	_, err = c.nodes[l].Get("a3")
	require.Error(t, err)
}
