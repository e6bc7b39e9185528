package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNode_StatsCountTheRaftLog: a node's log is raft's, so its Stats
// give the size of the log store's files, the appends to it and how long
// they took, and the raft snapshots it persisted; on a follower too.
func TestNode_StatsCountTheRaftLog(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		c := newDBClusterOn(t, store, 3, nil)
		l := c.leader()
		before := c.node(l).Stats().Checkpoints
		for k := range 20 {
			_, err := c.node(l).Set(fmt.Sprintf("k%d", k), "v", nil)
			require.NoError(t, err)
		}
		c.converged()
		for i := range c.nodes {
			st := c.node(i).Stats()
			require.Positive(t, st.Syncs, "node %d: appends to the raft log", i)
			require.Len(t, st.SyncLatency.Counts, len(st.SyncLatency.Bounds)+1, "node %d", i)
			var n int64
			for _, k := range st.SyncLatency.Counts {
				n += k
			}
			require.Equal(t, st.Syncs, n, "node %d: every append in the histogram", i)
			require.Greater(t, st.SyncLatency.Sum, time.Duration(0), "node %d", i)
			require.Positive(t, st.LogBytes, "node %d: the log store's files", i)
		}
		require.NoError(t, c.node(l).rn.raft.Snapshot().Error())
		require.Equal(t, before+1, c.node(l).Stats().Checkpoints, "the snapshot just taken")
	})
}
