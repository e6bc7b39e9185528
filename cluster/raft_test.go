package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/cluster/clustertest"
	"github.com/stretchr/testify/require"
)

// listFSM is a state machine that keeps every distinct entry applied to
// it, in order: an entry proposed again after an uncertain failure is
// kept once.
type listFSM struct {
	applied appliedTracker

	mu      sync.Mutex // guards entries
	entries [][]byte
}

func (f *listFSM) tracker() *appliedTracker { return &f.applied }

func (f *listFSM) Apply(l *raft.Log) any {
	defer f.applied.advance(l.Index)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if bytes.Equal(e, l.Data) {
			return len(f.entries)
		}
	}
	f.entries = append(f.entries, bytes.Clone(l.Data))
	return len(f.entries)
}

func (f *listFSM) list() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.entries...)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnap(f.list()), nil }

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries [][]byte
	for {
		var n uint32
		if err := binary.Read(rc, binary.BigEndian, &n); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(rc, b); err != nil {
			return err
		}
		entries = append(entries, b)
	}
	f.mu.Lock()
	f.entries = entries
	f.mu.Unlock()
	f.applied.restored()
	return nil
}

type listSnap [][]byte

func (s listSnap) Persist(sink raft.SnapshotSink) error {
	for _, e := range s {
		if err := binary.Write(sink, binary.BigEndian, uint32(len(e))); err != nil {
			sink.Cancel()
			return err
		}
		if _, err := sink.Write(e); err != nil {
			sink.Cancel()
			return err
		}
	}
	return sink.Close()
}

func (listSnap) Release() {}

// raftCluster is n raft nodes with list FSMs over a clustertest.Net.
type raftCluster struct {
	t     *testing.T
	net   *clustertest.Net
	dir   string
	peers []Peer
	nodes []*raftNode
	fsms  []*listFSM

	isolated int // a node cut off, not to propose to; -1 for none
}

func newRaftCluster(t *testing.T, n int) *raftCluster {
	t.Helper()
	nt, err := clustertest.New(n)
	require.NoError(t, err)
	c := &raftCluster{t: t, net: nt, dir: t.TempDir(), nodes: make([]*raftNode, n), fsms: make([]*listFSM, n), isolated: -1}
	for i := range n {
		c.peers = append(c.peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: nt.Addr(i)})
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
		require.NoError(t, nt.Close())
	})
	return c
}

func (c *raftCluster) start(i int) {
	c.t.Helper()
	ln, err := c.net.Listener(i)
	require.NoError(c.t, err)
	o, err := (&Options{
		NodeID:   c.peers[i].ID,
		RaftAddr: c.peers[i].Addr,
		Peers:    c.peers,
		Profile:  ProfileLAN,
		Listener: ln,
		Dial:     c.net.Dialer(i),
	}).withDefaults()
	require.NoError(c.t, err)
	c.fsms[i] = &listFSM{}
	n, err := startRaft(filepath.Join(c.dir, o.NodeID), &o, newMux(ln, o.RaftAddr, o.Dial), c.fsms[i], nil, false)
	require.NoError(c.t, err)
	c.nodes[i] = n
}

func (c *raftCluster) stop(i int) {
	if c.nodes[i] != nil {
		require.NoError(c.t, c.nodes[i].close())
		c.nodes[i] = nil
	}
}

// leader waits for one running node, among those in among (all if
// empty), to be leader, and returns its index.
func (c *raftCluster) leader(among ...int) int {
	c.t.Helper()
	if len(among) == 0 {
		for i := range c.nodes {
			among = append(among, i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range among {
			if n := c.nodes[i]; n != nil && n.raft.State() == raft.Leader {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader among %v", among)
	return -1
}

// apply proposes entries through the leader and waits for them to commit.
// A machine this loaded may hold an election now and then even without a
// fault: what fails is proposed again, in order, to the leader among the
// same nodes.
func (c *raftCluster) apply(leader int, from, to int) {
	c.t.Helper()
	var among []int
	for _, i := range c.running() {
		if i != c.isolated {
			among = append(among, i)
		}
	}
	for try := 0; from < to; try++ {
		require.Less(c.t, try, 5, "entries from e%d did not commit", from)
		var fs []raft.ApplyFuture
		for k := from; k < to; k++ {
			fs = append(fs, c.nodes[leader].raft.Apply([]byte(fmt.Sprintf("e%d", k)), 5*time.Second))
		}
		for _, f := range fs {
			if f.Error() != nil {
				break
			}
			from++
		}
		if from < to {
			leader = c.leader(among...)
		}
	}
}

// converged waits until every running node has applied exactly want.
func (c *raftCluster) converged(want []string) {
	c.t.Helper()
	var got []string
	for _, i := range c.running() {
		require.Eventually(c.t, func() bool {
			got = got[:0]
			for _, e := range c.fsms[i].list() {
				got = append(got, string(e))
			}
			return fmt.Sprint(got) == fmt.Sprint(want)
		}, 10*time.Second, 10*time.Millisecond, "node %d applied %v, want %v", i, got, want)
	}
}

func (c *raftCluster) running() []int {
	var r []int
	for i, n := range c.nodes {
		if n != nil {
			r = append(r, i)
		}
	}
	return r
}

func entries(from, to int) []string {
	var s []string
	for k := from; k < to; k++ {
		s = append(s, fmt.Sprintf("e%d", k))
	}
	return s
}

func TestRaft_ReplicatesAndFailsOverThroughProxies(t *testing.T) {
	c := newRaftCluster(t, 3)
	for _, n := range c.nodes {
		require.True(t, n.bootstrapped, "a fresh directory with peers bootstraps")
	}
	l := c.leader()
	c.apply(l, 0, 50)
	c.converged(entries(0, 50))

	// Kill the leader: the other two elect one and go on.
	c.stop(l)
	l2 := c.leader()
	require.NotEqual(t, l, l2)
	c.apply(l2, 50, 100)
	c.converged(entries(0, 100))

	// The killed node restarts from its directory, without bootstrapping
	// again, and catches up.
	c.start(l)
	require.False(t, c.nodes[l].bootstrapped, "a restart keeps its raft state")
	c.converged(entries(0, 100))

	// Partition the leader into a minority: what it proposes there does
	// not commit, the majority elects a leader that commits, and after
	// healing everyone holds the majority's history.
	l3 := c.leader()
	c.net.Isolate(l3)
	c.isolated = l3
	f := c.nodes[l3].raft.Apply([]byte("orphan"), 2*time.Second)
	var rest []int
	for i := range c.nodes {
		if i != l3 {
			rest = append(rest, i)
		}
	}
	l4 := c.leader(rest...)
	c.net.Isolate(l3) // cut again whatever redialed between the calls
	c.apply(l4, 100, 150)
	require.Error(t, f.Error(), "an entry proposed in a minority must not commit")
	c.net.Heal()
	c.isolated = -1
	c.converged(entries(0, 150))
}

func TestRaft_SlowAndLossyLinksStillCommit(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	// One follower behind a slow link, the other's replies swallowed for
	// a while: the slow one still forms a majority with the leader.
	var fs []int
	for i := range c.nodes {
		if i != l {
			fs = append(fs, i)
		}
	}
	f1, f2 := fs[0], fs[1]
	c.net.Link(l, f1).SetDelay(20 * time.Millisecond)
	c.net.Link(f1, l).SetDelay(20 * time.Millisecond)
	c.net.Link(l, f2).SetDrop(true)
	c.apply(l, 0, 30)
	c.net.Heal()
	c.converged(entries(0, 30))
}

func TestRaft_RestartTakesRaftStateFromSnapshotAndLog(t *testing.T) {
	c := newRaftCluster(t, 3)
	l := c.leader()
	c.apply(l, 0, 40)
	require.NoError(t, c.nodes[l].raft.Snapshot().Error())
	c.apply(l, 40, 60)
	c.converged(entries(0, 60))
	for i := range c.nodes {
		c.stop(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.converged(entries(0, 60))
	c.apply(c.leader(), 60, 70)
	c.converged(entries(0, 70))
}
