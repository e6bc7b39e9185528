package cluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
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

// TestSnapshot_LeftoversOfACrashAreRemoved: a node that stops in the
// middle of writing a snapshot, its own or one its leader sends, leaves
// the snapshot's temporary folder, as large as the state, which raft
// never reaps. The node removes such leftovers as it opens, and its
// complete snapshots stay.
func TestSnapshot_LeftoversOfACrashAreRemoved(t *testing.T) {
	c := newListNodes(t, 3, 0)
	c.apply([]byte("a"))
	f := (c.leader() + 1) % 3
	require.NoError(t, c.nodes[f].rn.raft.Snapshot().Error())
	require.NoError(t, c.nodes[f].Close())
	c.nodes[f] = nil
	snaps := filepath.Join(c.dir, fmt.Sprintf("n%d", f), "snapshots")
	kept, err := os.ReadDir(snaps)
	require.NoError(t, err)
	require.Len(t, kept, 1)
	left := filepath.Join(snaps, "2-40-1700000000000.tmp")
	require.NoError(t, os.Mkdir(left, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(left, "state.bin"), bytes.Repeat([]byte("x"), 1<<20), 0o644))

	c.open(f, nil, nil)
	_, err = os.Stat(left)
	require.ErrorIs(t, err, os.ErrNotExist, "a crash's partial snapshot is still there")
	now, err := os.ReadDir(snaps)
	require.NoError(t, err)
	require.Equal(t, kept[0].Name(), now[0].Name())
	require.Len(t, now, 1)
	c.apply([]byte("b"))
	require.Eventually(t, func() bool { return len(c.fsms[f].list()) == 2 }, 10*time.Second, 5*time.Millisecond)
}

// TestSnapshot_CommitClockSurvivesRestore: the clock of write
// transactions never goes below the newest commit time a node applied,
// so that time does not run backwards across a failover to a node whose
// clock is behind. A node that rebuilt its state from a snapshot, as
// every node does on a restart, applied the commits in it too: a key
// written with a TTL once it leads, its clock 10 s behind, must not be
// due before one written with the same TTL earlier.
func TestSnapshot_CommitClockSurvivesRestore(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	c.clockSkew[f].Store(int64(-10 * time.Second))
	a, err := c.nodes[l].Set("a", "v", &engine.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	c.converged()
	for i := range c.nodes {
		require.NoError(t, c.nodes[i].rn.raft.Snapshot().Error())
	}
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.caughtUp()
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 5, "leadership kept moving")
		if c.leader() == f {
			break
		}
		require.NoError(t, c.nodes[c.leader()].TransferLeadership(ctxT(t), c.peers[f].ID))
	}
	b, err := c.nodes[f].Set("b", "v", &engine.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	require.False(t, b.ExpiresAt.Before(a.ExpiresAt), "a later write's commit time went back: %v after %v",
		b.ExpiresAt.Add(-time.Hour), a.ExpiresAt.Add(-time.Hour))
}
