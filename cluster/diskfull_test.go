package cluster

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// diskFault is node i's storeFault: while c.full[i] is set, every write
// to its raft stores fails with ENOSPC, as on a full disk.
func (c *dbCluster) diskFault(i int) func() error {
	return func() error {
		if c.full[i].Load() {
			return &os.PathError{Op: "write", Path: raftDBFile, Err: syscall.ENOSPC}
		}
		return nil
	}
}

// TestFault_DiskFullOnLeader fills the leader's disk while writers write
// through every node: the leader's first append fails, it steps down,
// and the writes it had executed fail with ErrNotCommitted; another node
// takes over, and the full one cannot lead (it cannot even save a new
// term; it waits for space). Once space returns it catches up. No
// acknowledged write is lost, no refused one appears, every failure is
// one of the cluster's errors, and streams resumed on random nodes join
// into exactly the committed history.
func TestFault_DiskFullOnLeader(t *testing.T) {
	forEachStore(t, testFaultDiskFullOnLeader)
}

func testFaultDiskFullOnLeader(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(3, w, c.anyNode, stop)
	ss := startStreams(c, 2)
	for range *rounds {
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		l := c.leader()
		c.full[l].Store(true)
		nl := c.leader(l)
		t.Logf("n%d's disk is full; n%d leads", l, nl)
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		// Writers that picked the full node wait there for a leader;
		// the others go on committing.
		_, err := c.node(nl).Set(fmt.Sprintf("probe/%d", l), "v", nil)
		require.NoError(t, err, "the others go on committing")
		require.False(t, c.node(l).IsLeader(), "a node with a full disk does not lead")
		c.full[l].Store(false)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	final := w.settle(t, c)
	w.requireTyped(t)
	require.NotEmpty(t, w.refused, "the writes in the entry the full disk refused fail with ErrNotCommitted")
	ss.check(t, w, final, engine.ErrCompacted)
	t.Logf("acknowledged %d, failed %v", len(w.acked), w.summary())
}

// TestFault_DiskFullOnFollower fills a follower's disk while writers
// write: it refuses the entries, falls behind while the others commit,
// and once space returns catches up, from the log or, in rounds where the
// leader trimmed its log meanwhile, by installing a snapshot (whose
// creation also fails while the disk is full).
func TestFault_DiskFullOnFollower(t *testing.T) {
	forEachStore(t, testFaultDiskFullOnFollower)
}

func testFaultDiskFullOnFollower(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	c.trailing = 32
	for i := range c.nodes { // again, with a short trailing log
		c.stop(i)
		c.start(i)
	}
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(3, w, c.anyNode, stop)
	ss := startStreams(c, 2)
	for range *rounds {
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
		l := c.leader()
		f := (l + 1 + rng.IntN(2)) % 3
		bySnapshot := rng.IntN(2) == 0
		c.full[f].Store(true)
		ln, fn := c.node(l), c.node(f)
		behind := fn.Revision()
		require.Eventually(t, func() bool { return ln.Revision() > behind+50 }, 10*time.Second, time.Millisecond,
			"the others commit without the full follower")
		if bySnapshot {
			require.Eventually(t, func() bool { return ln.Status().LastIndex > fn.Status().LastIndex+2*c.trailing },
				10*time.Second, time.Millisecond)
			// Both others trim their logs, so that whichever of them
			// leads when the disk has space again (an election between
			// them may come under -race on a busy machine) sends a
			// snapshot.
			for i := range c.nodes {
				if i == f {
					continue
				}
				if err := c.node(i).rn.raft.Snapshot().Error(); !errors.Is(err, raft.ErrNothingNewToSnapshot) {
					require.NoError(t, err)
				}
			}
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
		require.Less(t, fn.Revision(), ln.Revision(), "the full follower falls behind")
		opened := fn.sm.tracker().opened.Load()
		c.full[f].Store(false)
		target := ln.Revision()
		require.Eventually(t, func() bool { return fn.Revision() >= target }, 15*time.Second, time.Millisecond,
			"n%d catches up once its disk has space", f)
		how := "the log"
		if bySnapshot {
			require.Greater(t, fn.sm.tracker().opened.Load(), opened, "n%d caught up by a snapshot", f)
			how = fmt.Sprintf("a snapshot at index %d", fn.sm.tracker().opened.Load())
		}
		t.Logf("n%d's disk was full; it caught up by %s", f, how)
	}
	close(stop)
	wg.Wait()
	final := w.settle(t, c)
	w.requireTyped(t)
	ss.check(t, w, final, engine.ErrCompacted)
	t.Logf("acknowledged %d, failed %v", len(w.acked), w.summary())
}

// TestDiskFull_CloseWhileStalled closes a follower whose disk is full
// while it waits to save a new term (the leader handed leadership on):
// Close returns without waiting for space, with an error saying that
// raft's later writes were dropped (the network cut first), and the node
// reopened on the same directory once there is space catches up with
// everything committed.
func TestDiskFull_CloseWhileStalled(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f, g := (l+1)%3, (l+2)%3
	for k := range 20 {
		_, err := c.node(l).Set(fmt.Sprintf("a%d", k), "v", nil)
		require.NoError(t, err)
	}
	c.full[f].Store(true)
	fn := c.node(f)
	require.NoError(t, c.node(l).TransferLeadership(ctxT(t), c.peers[g].ID))
	require.Equal(t, g, c.leader(l, f))
	require.Eventually(t, func() bool { return fn.rn.store.stalls.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the full follower waits to save the new term")
	var last int64
	for k := range 20 {
		it, err := c.node(g).Set(fmt.Sprintf("b%d", k), "v", nil)
		require.NoError(t, err, "two of three nodes commit")
		last = it.Revision
	}
	require.Less(t, fn.Revision(), last)

	closed := make(chan error, 1)
	go func() { closed <- c.node(f).Close() }()
	select {
	case err := <-closed:
		require.ErrorIs(t, err, syscall.ENOSPC, "Close says that raft's last writes were dropped")
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the disk")
	}
	require.True(t, fn.rn.store.fenced.Load(), "the store was fenced off")
	c.mu.Lock()
	c.nodes[f] = nil
	c.mu.Unlock()

	c.full[f].Store(false)
	c.restart(f)
	it, err := c.node(f).Get("b19", Read(Stale, MinRevision(last)))
	require.NoError(t, err)
	require.Equal(t, last, it.Revision)
	c.converged()
}

// TestDiskFull_RefusalsDoNotWedgeReplication fills and frees a
// follower's disk many times, briefly, while a writer writes: after each
// episode the follower catches up. With raft's pipelined replication a
// refusal could stop replication to the follower for good (see
// syncTransport); this catches that within a few episodes.
func TestDiskFull_RefusalsDoNotWedgeReplication(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(8, w, func() *Node { return c.node(l) }, stop)
	ln, fn := c.node(l), c.node(f)
	for range 30 {
		c.full[f].Store(true)
		time.Sleep(30 * time.Millisecond)
		c.full[f].Store(false)
		target := ln.Revision()
		require.Eventually(t, func() bool { return fn.Revision() >= target }, 10*time.Second, time.Millisecond,
			"the follower catches up after its disk refused entries")
	}
	close(stop)
	wg.Wait()
	c.converged()
	w.check(t, c)
	require.NotEmpty(t, w.acked)
}
