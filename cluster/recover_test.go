package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// recoverOpts are the options Recover gets for node i of c.
func (c *dbCluster) recoverOpts(i int) *Options {
	return &Options{NodeID: c.peers[i].ID, LogStore: c.store, walSegmentSize: testSegmentSize}
}

// dirOf is node i's directory.
func (c *dbCluster) dirOf(i int) string { return filepath.Join(c.dir, c.peers[i].ID) }

// writeKeys writes k fresh keys through the leader and returns the
// revision of each, by key.
func writeKeys(t *testing.T, c *dbCluster, prefix string, k int) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for i := range k {
		key := fmt.Sprintf("%s%03d", prefix, i)
		l := c.node(c.leader())
		it, err := l.Set(key, "v-"+key, nil)
		require.NoError(t, err)
		out[key] = it.Revision
	}
	return out
}

// waitApplied waits until node i has applied revision rev.
func (c *dbCluster) waitApplied(i int, rev int64) {
	c.t.Helper()
	require.Eventually(c.t, func() bool { return c.node(i).Revision() >= rev }, 10*time.Second, 5*time.Millisecond,
		"node %d did not apply revision %d", i, rev)
}

// requireHistory subscribes on n after revision from and checks that it
// delivers every revision from from+1 to last, once and in order, each a
// change of the key written at it (want: revision to key).
func requireHistory(t *testing.T, n *Node, from, last int64, want map[int64]string) {
	t.Helper()
	o := &engine.SubscribeOptions{FromRevision: from}
	if from == 0 {
		o = &engine.SubscribeOptions{From: pubsub.Position{Revision: 1}}
	}
	s, err := n.Subscribe([]string{"*"}, o)
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for rev := from + 1; rev <= last; rev++ {
		ev, err := s.Next(ctx)
		require.NoError(t, err, "waiting for revision %d", rev)
		require.Equal(t, rev, ev.Revision, "a gap in the history")
		if k, ok := want[rev]; ok {
			require.Equal(t, k, ev.Key)
		}
	}
}

// TestRecover_SurvivorOfThreeBecomesOneNodeCluster loses two of three
// nodes for good: the survivor, recovered alone, leads, holds every
// write, takes new ones, and its subscribers replay its history: all of
// it, or, if it had taken a snapshot, all after the snapshot, as after
// any restart.
func TestRecover_SurvivorOfThreeBecomesOneNodeCluster(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		t.Run("log", func(t *testing.T) { testRecoverSurvivorOfThree(t, store, false) })
		t.Run("snapshot", func(t *testing.T) { testRecoverSurvivorOfThree(t, store, true) })
	})
}

func testRecoverSurvivorOfThree(t *testing.T, store LogStore, snap bool) {
	c := newDBClusterOn(t, store, 3, nil)
	l := c.leader()
	s := (l + 1) % 3 // a follower survives
	written := writeKeys(t, c, "k", 30)
	var from int64
	if snap {
		c.waitApplied(s, c.node(l).Revision())
		require.NoError(t, c.node(s).rn.raft.Snapshot().Error())
		from = c.node(s).Revision()
	}
	for k, r := range writeKeys(t, c, "m", 30) {
		written[k] = r
	}
	var last int64
	byRev := map[int64]string{}
	for k, r := range written {
		last = max(last, r)
		byRev[r] = k
	}
	c.waitApplied(s, last)
	for i := range 3 {
		if i != s {
			c.kill(i)
		}
	}
	// Without a majority nothing is acknowledged. If s won an election
	// between the two kills, it is the leader and has the write in its
	// log: the outcome is uncertain, and recovery, which keeps every
	// entry, may commit it. Otherwise the write never reached a log.
	_, err := c.node(s).Set("lost", "x", nil)
	require.Error(t, err)
	uncertain := errors.Is(err, ErrUncertain)

	require.ErrorIs(t, Recover(c.dirOf(s), c.recoverOpts(s), []Peer{c.peers[s]}), ErrNodeRunning)
	c.kill(s)
	require.NoError(t, Recover(c.dirOf(s), c.recoverOpts(s), []Peer{c.peers[s]}))
	c.restart(s)
	require.Equal(t, s, c.leader())
	n := c.node(s)
	st := n.Status()
	require.Equal(t, []Server{{ID: c.peers[s].ID, Addr: c.peers[s].Addr, Voter: true}}, st.Servers)
	for k, r := range written {
		it, err := n.Get(k)
		require.NoError(t, err, k)
		require.Equal(t, "v-"+k, it.Value)
		require.Equal(t, r, it.Revision)
	}
	if it, err := n.Get("lost"); err == nil {
		require.True(t, uncertain, "a write refused for certain was committed by recovery")
		require.Equal(t, "x", it.Value)
	} else {
		require.ErrorIs(t, err, engine.ErrNotFound)
	}
	after := writeKeys(t, c, "after", 5)
	for k, r := range after {
		last = max(last, r)
		byRev[r] = k
	}
	requireHistory(t, n, from, last, byRev)
	if snap {
		_, err := n.Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.Position{Revision: 1}})
		require.ErrorIs(t, err, engine.ErrCompacted)
	}

	// Recovered twice (the log now starts after the snapshot), and
	// restarted: still all there.
	c.kill(s)
	require.NoError(t, Recover(c.dirOf(s), c.recoverOpts(s), []Peer{c.peers[s]}))
	c.restart(s)
	require.Equal(t, s, c.leader())
	require.Equal(t, last, c.node(s).Revision())
	for k := range written {
		_, err := c.node(s).Get(k)
		require.NoError(t, err, k)
	}
}

// TestRecover_TwoSurvivorsOfFive: of five nodes, one is removed after
// the survivors took snapshots (so their logs hold a configuration
// change past the snapshot), then three die, the leader among them. The
// two left, recovered with the same list, elect a leader, hold every
// write and take new ones as a two-voter cluster.
func TestRecover_TwoSurvivorsOfFive(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		c := newDBClusterOn(t, store, 5, nil)
		l := c.leader()
		survivors := []int{(l + 1) % 5, (l + 3) % 5}
		removed := (l + 2) % 5
		written := writeKeys(t, c, "k", 20)
		for _, i := range survivors {
			c.waitApplied(i, c.node(l).Revision())
			require.NoError(t, c.node(i).rn.raft.Snapshot().Error())
		}
		require.NoError(t, c.node(l).RemoveServer(ctxT(t), c.peers[removed].ID))
		c.kill(removed)
		for k, r := range writeKeys(t, c, "m", 20) {
			written[k] = r
		}
		var last int64
		for _, r := range written {
			last = max(last, r)
		}
		for _, i := range survivors {
			c.waitApplied(i, last)
		}
		for i := range 5 {
			if i != survivors[0] && i != survivors[1] && i != removed {
				c.kill(i)
			}
		}
		peers := []Peer{c.peers[survivors[1]], c.peers[survivors[0]]}
		for _, i := range survivors {
			c.kill(i)
			require.NoError(t, Recover(c.dirOf(i), c.recoverOpts(i), peers))
		}
		for _, i := range survivors {
			c.restart(i)
		}
		nl := c.leader()
		require.Contains(t, survivors, nl)
		require.Len(t, c.node(nl).Status().Servers, 2)
		more := writeKeys(t, c, "after", 10)
		c.converged()
		for _, i := range survivors {
			n := c.node(i)
			for k, r := range written {
				// A restarted node serves stale reads once it has caught
				// up, which may come after the states converged.
				it, err := n.Get(k, Read(Stale, MinRevision(r)))
				require.NoError(t, err, k)
				require.Equal(t, r, it.Revision)
			}
			for k := range more {
				_, err := n.Get(k)
				require.NoError(t, err, k)
			}
		}
		// Both are voters: with one of them down the other cannot write.
		c.kill(survivors[0])
		_, err := c.node(survivors[1]).Set("x", "y", nil)
		require.Error(t, err)
	})
}

// TestRecover_RefusesBadInput checks Recover's typed errors.
func TestRecover_RefusesBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		c := newDBClusterOn(t, store, 1, nil)
		c.leader()
		self := c.peers[0]
		o := c.recoverOpts(0)
		dir := c.dirOf(0)

		require.ErrorIs(t, Recover(dir, o, []Peer{self}), ErrNodeRunning)
		c.kill(0)
		require.ErrorIs(t, Recover(dir, o, nil), ErrInvalidOptions)
		require.ErrorIs(t, Recover(dir, nil, []Peer{self}), ErrInvalidOptions)
		require.ErrorIs(t, Recover(dir, o, []Peer{{ID: "other", Addr: "127.0.0.1:1"}}), ErrInvalidOptions)
		require.ErrorIs(t, Recover(dir, o, []Peer{self, self}), ErrInvalidOptions)
		require.ErrorIs(t, Recover(dir, &Options{NodeID: self.ID, RaftAddr: "127.0.0.1:2", LogStore: store}, []Peer{self}), ErrInvalidOptions)
		other := LogStoreWAL
		if store == LogStoreWAL {
			other = LogStoreBolt
		}
		require.ErrorIs(t, Recover(dir, &Options{NodeID: self.ID, LogStore: other}, []Peer{self}), ErrInvalidOptions)

		empty := t.TempDir()
		require.ErrorIs(t, Recover(empty, o, []Peer{self}), ErrNoRaftState)
		require.ErrorIs(t, Recover(filepath.Join(empty, "missing"), o, []Peer{self}), ErrNoRaftState)
		ents, err := os.ReadDir(empty)
		require.NoError(t, err)
		require.Empty(t, ents, "a refused recovery wrote nothing")

		// None of the refusals changed the node: it opens as it was.
		c.restart(0)
		c.leader()
	})
}

// TestRecover_ConfigurationChangeLast recovers a node whose last log
// entry is a configuration change: the cut is the log's end, and the log
// is left empty, as RecoverCluster alone leaves it.
func TestRecover_ConfigurationChangeLast(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		c := newDBClusterOn(t, store, 1, nil)
		c.leader()
		written := writeKeys(t, c, "k", 10)
		r := c.node(0).rn.raft
		require.NoError(t, r.AddNonvoter("gone", "127.0.0.1:1", 0, 0).Error())
		last := r.LastIndex()
		var l raft.Log
		require.NoError(t, c.node(0).rn.store.GetLog(last, &l))
		require.Equal(t, raft.LogConfiguration, l.Type)
		c.kill(0)
		require.NoError(t, Recover(c.dirOf(0), c.recoverOpts(0), []Peer{c.peers[0]}))
		c.restart(0)
		require.Equal(t, 0, c.leader())
		require.Len(t, c.node(0).Status().Servers, 1)
		for k, r := range writeKeys(t, c, "m", 5) {
			written[k] = r
		}
		for k, rev := range written {
			it, err := c.node(0).Get(k)
			require.NoError(t, err, k)
			require.Equal(t, rev, it.Revision)
		}
		// Restarted once more, it replays the log written since.
		c.kill(0)
		c.restart(0)
		c.leader()
		for k := range written {
			_, err := c.node(0).Get(k)
			require.NoError(t, err, k)
		}
	})
}
