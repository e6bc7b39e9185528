package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/cluster/clustertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listNodes are Nodes over list FSMs on a clustertest.Net: the cluster
// machinery without the engine.
type listNodes struct {
	t     *testing.T
	net   *clustertest.Net
	dir   string
	nodes []*Node
	fsms  []*listFSM

	// refuseRaft, when it holds a node's raft address, fails every raft
	// connection opened to that node as it starts; RPCs go through.
	refuseRaft atomic.Value // string

	// stalled holds, while node i's is set, every write to its raft
	// log: a disk that stopped answering.
	stalled []atomic.Bool
	// inStall is set while a write to node i's raft log waits on
	// stalled.
	inStall []atomic.Bool
}

// dialer is slot's dialer on the network, with refuseRaft applied.
func (c *listNodes) dialer(slot int) func(ctx context.Context, addr string) (net.Conn, error) {
	dial := c.net.Dialer(slot)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := dial(ctx, addr)
		if err != nil || c.refuseRaft.Load() != addr {
			return conn, err
		}
		return &raftRefused{Conn: conn}, nil
	}
}

// raftRefused is a connection that fails if its first byte says raft.
type raftRefused struct {
	net.Conn
	checked bool
}

func (r *raftRefused) Write(p []byte) (int, error) {
	if !r.checked && len(p) > 0 {
		r.checked = true
		if p[0] == protoRaft {
			r.Conn.Close()
			return 0, errors.New("raft connection refused by the test")
		}
	}
	return r.Conn.Write(p)
}

// newListNodes starts founders nodes bootstrapped together, and leaves
// room on the network for extra more.
func newListNodes(t *testing.T, founders, extra int) *listNodes {
	t.Helper()
	nt, err := clustertest.New(founders + extra)
	require.NoError(t, err)
	c := &listNodes{t: t, net: nt, dir: t.TempDir(), nodes: make([]*Node, founders+extra), fsms: make([]*listFSM, founders+extra),
		stalled: make([]atomic.Bool, founders+extra), inStall: make([]atomic.Bool, founders+extra)}
	var peers []Peer
	for i := range founders {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: nt.Addr(i)})
	}
	for i := range founders {
		c.open(i, peers, nil)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				require.NoError(t, n.Close())
			}
		}
		require.NoError(t, nt.Close())
	})
	c.foundersCaughtUp(founders)
	return c
}

// foundersCaughtUp waits until the founders of a new cluster have caught
// up with its first leader: until then each follower holds back its vote
// from a candidate past the founding configuration (voteGate). A list
// node never serves (Node.served), so its gate opens on a leader's commit
// index, once it follows; a leader holds the whole log.
func (c *listNodes) foundersCaughtUp(founders int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for _, n := range c.nodes[:founders] {
			if !n.rn.gate.open.Load() && !n.IsLeader() {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "the founders catch up")
}

func (c *listNodes) open(i int, peers []Peer, join []string) {
	c.t.Helper()
	n, err := c.openErr(i, peers, join)
	require.NoError(c.t, err)
	c.nodes[i] = n
}

// openErr opens node i, as open does, and returns it or the error; it
// neither registers the node nor fails the test, so that it may run in
// its own goroutine.
func (c *listNodes) openErr(i int, peers []Peer, join []string) (*Node, error) {
	c.fsms[i] = &listFSM{}
	id := fmt.Sprintf("n%d", i)
	return c.openAt(id, id, i, i, peers, join, c.fsms[i])
}

// openAt opens the node id on the folder dir under c.dir, listening on
// slot's listener and dialing from it, but telling the others the raft
// address of slot addr (another node's, for a node that takes it), with
// peers or join and the state machine fsm. It neither registers the node
// nor fails the test.
func (c *listNodes) openAt(dir, id string, slot, addr int, peers []Peer, join []string, fsm stateMachine) (*Node, error) {
	ln, err := c.net.Listener(slot)
	if err != nil {
		return nil, err
	}
	return openNode(context.Background(), filepath.Join(c.dir, dir), &Options{
		NodeID: id, RaftAddr: c.net.Addr(addr), Peers: peers, Join: join,
		Profile: ProfileLAN, Listener: ln, Dial: c.dialer(slot),
		storeFault: func() error {
			for c.stalled[slot].Load() {
				c.inStall[slot].Store(true)
				time.Sleep(time.Millisecond)
			}
			c.inStall[slot].Store(false)
			return nil
		},
	}, fsm, nil)
}

func (c *listNodes) leader() int {
	c.t.Helper()
	var l int
	require.Eventually(c.t, func() bool {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() && n.isReady() {
				l = i
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "no ready leader")
	return l
}

// apply commits data through whichever node leads, and applies it again
// when leadership moves meanwhile (an election under load, at most 5
// times): a retried entry may have committed twice.
func (c *listNodes) apply(data []byte) {
	c.t.Helper()
	for try := 1; ; try++ {
		err := c.nodes[c.leader()].rn.raft.Apply(data, 5*time.Second).Error()
		moved := errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader)
		if err == nil || !moved || try == 5 {
			require.NoError(c.t, err)
			return
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNode_StatusLeaderAndTransfer(t *testing.T) {
	c := newListNodes(t, 3, 0)
	// Every node names the leader. An election in between (under -race on
	// a busy machine) may move it: then the check runs again with the new
	// one, at most 5 times.
	named := func(l int) bool {
		for _, n := range c.nodes {
			id, addr, err := n.WaitLeader(ctxT(t))
			require.NoError(t, err)
			s := n.Status()
			if id != fmt.Sprintf("n%d", l) || s.LeaderID != id {
				return false
			}
			require.Equal(t, c.net.Addr(l), addr)
			require.Len(t, s.Servers, 3)
		}
		return c.nodes[l].Status().State == "Leader"
	}
	for attempt := 0; !named(c.leader()); attempt++ {
		require.Less(t, attempt, 5, "leadership kept moving")
	}

	// Asked of a follower, the transfer is forwarded to the leader; after
	// an election in between, it is asked again.
	for attempt := 0; ; attempt++ {
		l := c.leader()
		target := (l + 1) % 3
		from := (l + 2) % 3
		require.NoError(t, c.nodes[from].TransferLeadership(ctxT(t), fmt.Sprintf("n%d", target)))
		if c.leader() == target {
			break
		}
		require.Less(t, attempt, 5, "leadership kept moving")
	}

	err := c.nodes[c.leader()].TransferLeadership(ctxT(t), "nobody")
	require.ErrorIs(t, err, ErrInvalidOptions)

	// To the leader itself, it holds already: done, nothing moves (a
	// forwarded transfer whose reply was lost is sent again, and finds
	// the target leading).
	for attempt := 0; ; attempt++ {
		l := c.leader()
		term := c.nodes[l].rn.raft.CurrentTerm()
		require.NoError(t, c.nodes[l].TransferLeadership(ctxT(t), fmt.Sprintf("n%d", l)))
		require.NoError(t, c.nodes[(l+1)%3].TransferLeadership(ctxT(t), fmt.Sprintf("n%d", l)))
		if c.leader() == l && c.nodes[l].rn.raft.CurrentTerm() == term {
			break
		}
		require.Less(t, attempt, 5, "leadership kept moving")
	}
}

func TestNode_JoinCatchesUpThenVotesAndRemoveTakesOut(t *testing.T) {
	c := newListNodes(t, 3, 1)
	for k := range 20 {
		c.apply(fmt.Appendf(nil, "e%d", k))
	}
	// The newcomer joins through a follower, which redirects it.
	l := c.leader()
	c.open(3, nil, []string{c.net.Addr((l + 1) % 3)})
	s := c.nodes[l].Status()
	require.Len(t, s.Servers, 4)
	for _, sv := range s.Servers {
		require.True(t, sv.Voter, "%s is a voter once caught up", sv.ID)
	}
	// It holds every entry, as the leader does (an entry applied again
	// after an election may be there twice, on both).
	want := c.fsms[l].list()
	for k := range 20 {
		require.Contains(t, want, fmt.Appendf(nil, "e%d", k))
	}
	require.Eventually(t, func() bool { return slices.EqualFunc(c.fsms[3].list(), want, bytes.Equal) }, 10*time.Second, 5*time.Millisecond)

	// Joining again is a no-op.
	require.NoError(t, c.nodes[3].Join(ctxT(t), c.net.Addr(l)))
	require.Len(t, c.nodes[l].Status().Servers, 4)

	// A follower removes a member through the leader.
	require.NoError(t, c.nodes[3].RemoveServer(ctxT(t), "n3"))
	require.Eventually(t, func() bool { return len(c.nodes[l].Status().Servers) == 3 }, 5*time.Second, 5*time.Millisecond)
}

func TestNode_LeaderLeaves(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l := c.leader()
	require.NoError(t, c.nodes[l].Leave(ctxT(t)))
	require.NoError(t, c.nodes[l].Close())
	c.nodes[l] = nil
	l2 := c.leader()
	require.NotEqual(t, l, l2)
	require.Eventually(t, func() bool { return len(c.nodes[l2].Status().Servers) == 2 }, 5*time.Second, 5*time.Millisecond)
	// Two nodes left of two voters: writes still commit.
	c.apply([]byte("after"))
}

func TestNode_LinearizeOnFollowerWaitsForCommittedEntries(t *testing.T) {
	c := newListNodes(t, 3, 0)
	// Slow down what the leader sends the follower, so that it applies
	// late, then commit with the other follower. If an election (under
	// -race on a busy machine) takes the leadership away first, it is
	// tried again with the new leader, at most 5 times.
	var f int
	for attempt := 0; ; attempt++ {
		l := c.leader()
		f = (l + 1) % 3
		c.net.Link(l, f).SetDelay(100 * time.Millisecond)
		err := c.nodes[l].rn.raft.Apply([]byte("x"), 5*time.Second).Error()
		if (errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost)) && attempt < 5 {
			c.net.Heal()
			continue
		}
		require.NoError(t, err)
		break
	}
	require.NoError(t, c.nodes[f].linearize(ctxT(t)))
	require.Equal(t, "x", string(c.fsms[f].list()[0]), "after linearize the follower has applied the committed entry")

	// A minority node cannot linearize.
	c.net.Heal()
	c.net.Isolate(f)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.ErrorIs(t, c.nodes[f].linearize(ctx), ErrNoLeader)
}

// TestNode_RemoveUnknownIDIsRefused: hashicorp raft takes the removal of
// an ID it does not know as done; a mistyped ID would leave the node it
// meant a voter, and the operator told it was removed. The leader refuses
// it, asked through a Remote (livekv cluster remove) or a follower.
func TestNode_RemoveUnknownIDIsRefused(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l := c.leader()
	r := NewRemote(c.net.Addr((l + 1) % 3))
	defer r.Close()
	errRemote := r.RemoveServer(ctxT(t), "n7")
	errNode := c.nodes[(l+2)%3].RemoveServer(ctxT(t), "no-such-node")
	errLeader := c.nodes[l].RemoveServer(ctxT(t), "n9")
	require.Len(t, c.nodes[c.leader()].Status().Servers, 3)
	require.ErrorIs(t, errRemote, ErrInvalidOptions)
	require.ErrorContains(t, errRemote, `no server "n7" in the cluster`)
	require.ErrorIs(t, errNode, ErrInvalidOptions)
	require.ErrorIs(t, errLeader, ErrInvalidOptions)
}

// loseReply is a connection that loses the reply to the first remove
// request written on it while arm is set: it waits until done reports
// the removal made, then fails as a connection cut would.
type loseReply struct {
	net.Conn
	arm  *atomic.Bool
	done func() bool
	lost bool
}

func (c *loseReply) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`"op":"remove"`)) && c.arm.CompareAndSwap(true, false) {
		c.lost = true
	}
	return c.Conn.Write(b)
}

func (c *loseReply) Read(b []byte) (int, error) {
	if !c.lost {
		return c.Conn.Read(b)
	}
	for deadline := time.Now().Add(10 * time.Second); !c.done() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	c.Conn.Close()
	return 0, io.ErrUnexpectedEOF
}

// TestNode_ForwardedRemoveWhoseReplyIsLostIsDone: a follower sends a
// removal whose reply the network loses again; the leader answers the
// second that the member is no server, since the first removed it, and
// that is success.
func TestNode_ForwardedRemoveWhoseReplyIsLostIsDone(t *testing.T) {
	c := newListNodes(t, 3, 0)
	f := (c.leader() + 1) % 3
	require.NoError(t, c.nodes[f].Close())
	c.nodes[f] = nil
	// f again, with a network that can lose a reply.
	var arm atomic.Bool
	var removed atomic.Value // the ID to remove
	removed.Store("")
	done := func() bool {
		for _, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return !slices.ContainsFunc(n.Status().Servers, func(s Server) bool { return s.ID == removed.Load() })
			}
		}
		return false
	}
	ln, err := c.net.Listener(f)
	require.NoError(t, err)
	dial := c.net.Dialer(f)
	c.fsms[f] = &listFSM{}
	id := fmt.Sprintf("n%d", f)
	c.nodes[f], err = openNode(context.Background(), filepath.Join(c.dir, id), &Options{
		NodeID: id, RaftAddr: c.net.Addr(f), Profile: ProfileLAN, Listener: ln,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := dial(ctx, addr)
			if err != nil {
				return nil, err
			}
			return &loseReply{Conn: conn, arm: &arm, done: done}, nil
		},
	}, c.fsms[f], nil)
	require.NoError(t, err)
	l := c.leader()
	for attempt := 0; l == f; attempt++ {
		require.Less(t, attempt, 5, "leadership kept moving")
		require.NoError(t, c.nodes[f].TransferLeadership(ctxT(t), ""))
		l = c.leader()
	}
	gone := 3 - l - f // neither the leader nor f
	removed.Store(fmt.Sprintf("n%d", gone))
	arm.Store(true)
	require.NoError(t, c.nodes[f].RemoveServer(ctxT(t), fmt.Sprintf("n%d", gone)))
	require.False(t, arm.Load(), "the reply was lost")
	require.True(t, done())
}

// TestNode_JoinWithTakenAddressIsRefused: a newcomer given a live member's
// raft address (a copied command line) is refused, and the member keeps
// its place; the address of a dead member goes to a newcomer, as before.
func TestNode_JoinWithTakenAddressIsRefused(t *testing.T) {
	c := newListNodes(t, 3, 3)
	c.apply([]byte("a"))
	l := c.leader()
	f := (l + 1) % 3
	n, err := c.openAt("n9", "n9", 3, f, nil, []string{c.net.Addr(l)}, &listFSM{})
	if err == nil {
		c.nodes[3] = n
	}
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.ErrorIs(t, err, ErrJoinRefused)
	require.ErrorContains(t, err, fmt.Sprintf("address %s is member n%d's", c.net.Addr(f), f))
	servers := c.nodes[c.leader()].Status().Servers
	require.Len(t, servers, 3)
	require.True(t, slices.ContainsFunc(servers, func(s Server) bool { return s.ID == fmt.Sprintf("n%d", f) && s.Voter }),
		"the live member n%d keeps its place: %+v", f, servers)

	// Nor is an address where a node that is no member answers.
	x, err := c.openAt("x", "x", 5, 5, []Peer{{ID: "x", Addr: c.net.Addr(5)}}, nil, &listFSM{})
	require.NoError(t, err)
	defer x.Close()
	n, err = c.openAt("n8", "n8", 3, 5, nil, []string{c.net.Addr(l)}, &listFSM{})
	if err == nil {
		c.nodes[3] = n
	}
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.ErrorIs(t, err, ErrJoinRefused)
	require.ErrorContains(t, err, fmt.Sprintf("%s answers as x, not n8", c.net.Addr(5)))
	require.Len(t, c.nodes[c.leader()].Status().Servers, 3)

	// Once f is dead, a newcomer on its address replaces it.
	require.NoError(t, c.nodes[f].Close())
	c.nodes[f] = nil
	c.fsms[4] = &listFSM{}
	c.nodes[4], err = c.openAt("n4", "n4", f, f, nil, []string{c.net.Addr(l)}, c.fsms[4])
	require.NoError(t, err)
	servers = c.nodes[c.leader()].Status().Servers
	require.Len(t, servers, 3)
	require.True(t, slices.ContainsFunc(servers, func(s Server) bool { return s.ID == "n4" && s.Voter && s.Addr == c.net.Addr(f) }), "%+v", servers)
}

// folderLostWhileOneLagged commits X while follower f1 is cut off,
// then closes the other follower, f2, and empties its folder, and closes
// the leader l: of the nodes that hold X, none is up. The network is
// whole again.
func (c *listNodes) folderLostWhileOneLagged() (l, f1, f2 int) {
	c.t.Helper()
	c.apply([]byte("a"))
	l = c.leader()
	f1, f2 = (l+1)%3, (l+2)%3
	c.net.Isolate(f1) // f1 lags behind
	require.NoError(c.t, c.nodes[l].rn.raft.Apply([]byte("X"), 5*time.Second).Error())
	require.NoError(c.t, c.nodes[f2].Close())
	c.nodes[f2] = nil
	require.NoError(c.t, os.RemoveAll(filepath.Join(c.dir, fmt.Sprintf("n%d", f2))))
	require.NoError(c.t, c.nodes[l].Close())
	c.nodes[l] = nil
	c.net.Heal()
	return l, f1, f2
}

// TestNode_WipedVoterIsRefusedAndVotesForNoOne: a member whose folder was
// emptied comes back under its ID with --join. Its raft, empty, would
// vote for any candidate, and a follower lacking a committed entry could
// win with that vote and lose the entry; and the leader would take it as
// joined already. Its raft takes no connection until a leader accepts
// it, and the leader refuses it: it is a voter, and it has no state.
func TestNode_WipedVoterIsRefusedAndVotesForNoOne(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l, f1, f2 := c.folderLostWhileOneLagged()

	// f2's join waits for a leader while f1 campaigns, which f2's vote
	// alone would make it win; then l, which holds X, comes back.
	type opened struct {
		n   *Node
		err error
	}
	wiped := make(chan opened, 1)
	go func() {
		n, err := c.openErr(f2, nil, []string{c.net.Addr(f1), c.net.Addr(l)})
		wiped <- opened{n, err}
	}()
	time.Sleep(time.Second)
	c.open(l, nil, nil)
	o := <-wiped
	if o.err == nil {
		c.nodes[f2] = o.n
	}
	require.ErrorIs(t, o.err, ErrInvalidOptions)
	require.ErrorIs(t, o.err, ErrJoinRefused)
	require.ErrorContains(t, o.err, fmt.Sprintf("remove it first (livekv cluster remove n%d)", f2))
	nl := c.leader()
	require.NotEqual(t, f2, nl)
	require.Contains(t, c.fsms[nl].list(), []byte("X"), "a committed entry was lost; the leader is n%d", nl)
	require.Len(t, c.nodes[nl].Status().Servers, 3, "the wiped node is still a member, until removed")

	// Removed, it joins under a new ID, with nothing of the old one's.
	require.NoError(t, c.nodes[nl].RemoveServer(ctxT(t), fmt.Sprintf("n%d", f2)))
	c.fsms[f2] = &listFSM{}
	var err error
	c.nodes[f2], err = c.openAt("n2b", "n2b", f2, f2, nil, []string{c.net.Addr(nl)}, c.fsms[f2])
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(c.fsms[f2].list(), func(b []byte) bool { return string(b) == "X" })
	},
		10*time.Second, 5*time.Millisecond)
}

// TestNode_WipedFounderVotesOnlyOnceCaughtUp: a founder whose folder was
// lost, started again with its founding peers, founds the configuration
// afresh with an empty log, and would vote for any candidate: f1, which
// lacks the committed X, could win with its vote while X's other holder
// is down, and X would be lost. It gives no vote in a cluster that has
// run until it has caught up with a leader, then is a member as before.
func TestNode_WipedFounderVotesOnlyOnceCaughtUp(t *testing.T) {
	c := newListNodes(t, 3, 0)
	peers := founders(c)
	l, f1, f2 := c.folderLostWhileOneLagged()

	c.open(f2, peers, nil)
	require.Never(t, func() bool { return c.nodes[f1].IsLeader() || c.nodes[f2].IsLeader() },
		2*time.Second, 5*time.Millisecond, "f1 campaigns; it wins only with the wiped node's vote")
	c.open(l, nil, nil)
	nl := c.leader()
	require.Contains(t, c.fsms[nl].list(), []byte("X"), "a committed entry was lost; the leader is n%d", nl)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(c.fsms[f2].list(), func(b []byte) bool { return string(b) == "X" })
	}, 10*time.Second, 5*time.Millisecond, "the wiped founder catches up")

	// Caught up, it votes again: with the leader gone, it and f1 elect one.
	require.NoError(t, c.nodes[nl].Close())
	c.nodes[nl] = nil
	require.Contains(t, c.fsms[c.leader()].list(), []byte("X"))
}

// memberAs reports whether the configuration servers list id as a voter
// at addr.
func memberAs(servers []Server, id, addr string) bool {
	return slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id && s.Addr == addr && s.Voter })
}

// TestNode_RestartOnNewAddressWithJoinRejoins: a member restarted on its
// folder with a new raft address and Join is moved there; before, Open
// succeeded and the cluster kept a voter at the old address.
func TestNode_RestartOnNewAddressWithJoinRejoins(t *testing.T) {
	c := newListNodes(t, 3, 1)
	c.apply([]byte("a"))
	l := c.leader()
	f := (l + 1) % 3
	require.NoError(t, c.nodes[f].Close())
	c.nodes[f] = nil
	id := fmt.Sprintf("n%d", f)
	var err error
	c.nodes[3], err = c.openAt(id, id, 3, 3, nil, []string{c.net.Addr(l)}, &listFSM{}) // its folder, a new address
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		servers := c.nodes[c.leader()].Status().Servers
		return len(servers) == 3 && memberAs(servers, id, c.net.Addr(3))
	}, 10*time.Second, 5*time.Millisecond, "%s is not a voter at its new address: %+v", id, c.nodes[c.leader()].Status().Servers)
}

// TestNode_InterruptedJoinIsResumedOnRestart: a newcomer whose join was
// cut short while it caught up (its process stopped) is a non-voter of
// the configuration; started again with Join, it becomes a voter. Before,
// a node with raft state skipped Join and stayed a non-voter for good.
func TestNode_InterruptedJoinIsResumedOnRestart(t *testing.T) {
	c := newDBCluster(t, 3, nil, 1)
	writeKeys(t, c, "k", 1200)
	slow := func(i int) {
		if i == 3 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.applyHold.Store(&slow)
	l := c.leader()
	c.start(3) // empty, no peers, no join yet
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := c.nodes[3].Join(ctx, c.peers[l].Addr)
	cancel()
	require.Error(t, err) // still catching up
	c.net.Isolate(3)      // the leader sees it caught up no more
	c.applyHold.Store(nil)
	require.Eventually(t, func() bool { return len(c.nodes[3].Status().Servers) > 0 }, 10*time.Second, 5*time.Millisecond)
	c.kill(3) // the newcomer's process stops mid-join
	c.net.Heal()
	// The old leader's wait for n3 would promote it once it catches up;
	// another leader knows nothing of that wait.
	require.NoError(t, c.nodes[l].TransferLeadership(ctxT(t), c.peers[(l+1)%3].ID))
	require.Eventually(t, func() bool {
		return !slices.ContainsFunc(c.node(c.leader()).Status().Servers, func(s Server) bool { return s.ID == "n3" && s.Voter })
	}, 5*time.Second, 5*time.Millisecond, "n3 is a voter already: %+v", c.node(c.leader()).Status().Servers)
	c.join = []string{c.peers[0].Addr, c.peers[1].Addr, c.peers[2].Addr, c.peers[3].Addr}
	c.start(3)
	require.Eventually(t, func() bool {
		return memberAs(c.node(c.leader()).Status().Servers, "n3", c.peers[3].Addr)
	}, 10*time.Second, 5*time.Millisecond, "n3 caught up and was started with Join, yet is no voter: %+v", c.node(c.leader()).Status().Servers)
}

// TestNode_RemovedNodeRejoinsAndAnotherClustersFolderIsRefused: a node
// with raft state that its cluster removed while it was cut off (so that
// it never heard of it and still lists itself a voter) joins again with
// Join (its log is its own: its votes were honest); a folder holding
// another cluster's state, sharing no member with the cluster at Join,
// is refused, under its own ID at its own address too.
func TestNode_RemovedNodeRejoinsAndAnotherClustersFolderIsRefused(t *testing.T) {
	c := newListNodes(t, 3, 2)
	c.apply([]byte("a"))
	l := c.leader()
	f := (l + 1) % 3
	id := fmt.Sprintf("n%d", f)
	c.net.Isolate(f)
	require.NoError(t, c.nodes[l].RemoveServer(ctxT(t), id))
	c.net.Heal()
	require.True(t, memberAs(c.nodes[f].Status().Servers, id, c.net.Addr(f)), "cut off, %s heard of its removal", id)
	require.NoError(t, c.nodes[f].Close())
	c.nodes[f] = nil
	c.open(f, nil, []string{c.net.Addr(l)})
	require.Eventually(t, func() bool {
		return memberAs(c.nodes[c.leader()].Status().Servers, id, c.net.Addr(f))
	}, 10*time.Second, 5*time.Millisecond, "%+v", c.nodes[c.leader()].Status().Servers)

	// A single-node cluster of its own, stopped; its folder is opened
	// with Join, under its own ID and address, then under another ID.
	x, err := c.openAt("x", "x", 4, 4, []Peer{{ID: "x", Addr: c.net.Addr(4)}}, nil, &listFSM{})
	require.NoError(t, err)
	_, _, err = x.WaitLeader(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, x.Close())
	for _, o := range []struct {
		id   string
		slot int
	}{{"x", 4}, {"n9", 3}} {
		n, err := c.openAt("x", o.id, o.slot, o.slot, nil, []string{c.net.Addr(l)}, &listFSM{})
		if err == nil {
			c.nodes[o.slot] = n
		}
		require.ErrorIs(t, err, ErrInvalidOptions, o.id)
		require.ErrorIs(t, err, ErrJoinRefused, o.id)
		require.ErrorContains(t, err, "the folder holds another cluster's state: empty it", o.id)
	}
	require.Len(t, c.nodes[c.leader()].Status().Servers, 3, "x or n9 is a member")
}

// TestNode_LeaveOfARemovedNodeIsDone: a node removed already hears from
// no leader; its Leave is done at once, rather than wait for a leader
// until its context ends, whether the node heard of its removal or not
// (removed while cut off, it still lists itself a voter).
func TestNode_LeaveOfARemovedNodeIsDone(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("cut=%v", cut), func(t *testing.T) {
			c := newListNodes(t, 3, 0)
			l := c.leader()
			f := (l + 1) % 3
			id := fmt.Sprintf("n%d", f)
			if cut {
				c.net.Isolate(f)
			}
			require.NoError(t, c.nodes[l].RemoveServer(ctxT(t), id))
			time.Sleep(time.Second) // past the heartbeat timeout: it knows no leader
			if cut {
				require.True(t, memberAs(c.nodes[f].Status().Servers, id, c.net.Addr(f)), "cut off, %s heard of its removal", id)
				c.net.Heal()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			require.NoError(t, c.nodes[f].Leave(ctx))
		})
	}
}

// TestNode_LeaveOfANodeJustJoined: a node that has joined, but has not
// yet heard from the leader, holds no configuration: it is a member all
// the same, and its Leave must not be done before the leader has removed
// it.
func TestNode_LeaveOfANodeJustJoined(t *testing.T) {
	c := newListNodes(t, 3, 1)
	l := c.leader()
	c.refuseRaft.Store(c.net.Addr(3)) // the leader cannot replicate to n3
	c.open(3, nil, []string{c.net.Addr(l)})
	require.True(t, memberAs(c.nodes[l].Status().Servers, "n3", c.net.Addr(3)), "n3 joined")
	require.Empty(t, c.nodes[3].Status().Servers, "n3 heard from the leader")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	left := make(chan []Server, 1)
	go func() {
		err := c.nodes[3].Leave(ctx)
		assert.NoError(t, err)
		left <- c.nodes[l].Status().Servers // as Leave returns
	}()
	var servers []Server
	select {
	case servers = <-left:
	case <-time.After(300 * time.Millisecond):
		c.refuseRaft.Store("") // a Leave that waits for a leader to hear from gets one
		servers = <-left
	}
	require.False(t, slices.ContainsFunc(servers, func(s Server) bool { return s.ID == "n3" }),
		"Leave returned, yet the leader lists n3: %+v", servers)
}

// TestNode_ADeposedLeaderConfirmsNoMembership: a leader whose disk
// stalls in the middle of an append is deposed, and cannot know it: its
// raft waits on the disk. Asked about the membership (as Leave and a
// rejoin ask when what a node holds may be out of date), it must not
// answer as the leader with the configuration it holds, which leaves out
// a node that joined through its successor.
func TestNode_ADeposedLeaderConfirmsNoMembership(t *testing.T) {
	c := newListNodes(t, 3, 1)
	l := c.leader()
	f, g := (l+1)%3, (l+2)%3
	c.stalled[l].Store(true)
	applied := make(chan error, 1)
	go func() { applied <- c.nodes[l].rn.raft.Apply([]byte("x"), 10*time.Second).Error() }()
	t.Cleanup(func() { <-applied }) // after the disk is back: cleanups run last first
	t.Cleanup(func() { c.stalled[l].Store(false) })
	for _, i := range []int{f, g} { // cut off from the others, who elect a leader
		c.net.Link(l, i).Cut()
		c.net.Link(i, l).Cut()
	}
	var l2 int
	require.Eventually(t, func() bool {
		for _, i := range []int{f, g} {
			if c.nodes[i].IsLeader() && c.nodes[i].isReady() {
				l2 = i
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "a new leader")
	c.open(3, nil, []string{c.net.Addr(l2)})
	require.True(t, c.nodes[l].IsLeader(), "the old leader, stalled, still believes it leads")

	s, err := c.nodes[3].askCluster(ctxT(t), []string{c.net.Addr(l)}, memberCheckTimeout, true)
	if err == nil {
		require.Failf(t, "a deposed leader answered as the leader", "%s says it leads in term %d with %+v", s.ID, s.Term, s.Servers)
	}
}

// TestNode_LeaveIsNotAnsweredByALaggingMember: a voter (n3) whose
// addition a lagging member missed calls Leave while no leader is known
// (the two others down). The lagging member, the one that answers, knows
// no leader and holds a configuration without n3: Leave must not take
// that for n3's removal.
func TestNode_LeaveIsNotAnsweredByALaggingMember(t *testing.T) {
	c, lag, others := joinedWhileOneLagged(t)
	// n0 and n1 go down (a restart, say); n2 comes back.
	for _, i := range others {
		require.NoError(t, c.nodes[i].Close())
		c.nodes[i] = nil
	}
	c.net.Heal()
	require.Eventually(t, func() bool { id, _ := c.nodes[3].Leader(); return id == "" }, 5*time.Second, 5*time.Millisecond)
	require.False(t, slices.ContainsFunc(c.nodes[lag].Status().Servers, func(s Server) bool { return s.ID == "n3" }), "n2 is not stale")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.nodes[3].Leave(ctx)
	t.Logf("Leave: %v; n3 stores %+v", err, c.nodes[3].Status().Servers)

	// n0 and n1 come back: n3 is still a voter.
	c.open(others[0], nil, nil)
	c.open(others[1], nil, nil)
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	servers := c.nodes[c.leader()].Status().Servers
	require.Falsef(t, err == nil && memberAs(servers, "n3", c.net.Addr(3)),
		"Leave returned nil, yet the leader lists n3 a voter: %+v", servers)
}

// TestNode_RestartWithJoinIsNotAnsweredByALaggingMember: the same, but
// n3 restarts with Join while the two others are down: the lagging
// member's answer must not make it join again, and so wait for a leader,
// rather than open as the member it is.
func TestNode_RestartWithJoinIsNotAnsweredByALaggingMember(t *testing.T) {
	c, _, others := joinedWhileOneLagged(t)
	for _, i := range append(others, 3) {
		require.NoError(t, c.nodes[i].Close())
		c.nodes[i] = nil
	}
	c.net.Heal()
	type res struct {
		n   *Node
		err error
	}
	done := make(chan res, 1)
	start := time.Now()
	go func() {
		n, err := c.openErr(3, nil, []string{c.net.Addr(0), c.net.Addr(1), c.net.Addr(2)})
		done <- res{n, err}
	}()
	var r res
	select {
	case r = <-done:
	case <-time.After(8 * time.Second):
	}
	blocked := r.n == nil && r.err == nil
	c.open(others[0], nil, nil)
	c.open(others[1], nil, nil)
	if blocked {
		r = <-done
	}
	require.NoError(t, r.err)
	c.nodes[3] = r.n
	require.Falsef(t, blocked, "Open of member n3 blocked %v waiting for a leader", time.Since(start))
}

// joinedWhileOneLagged starts n0..n2 and joins n3 while a follower, lag,
// is cut off, so that lag's configuration leaves n3 out; the links are
// still cut. others are the two founders but lag.
func joinedWhileOneLagged(t *testing.T) (c *listNodes, lag int, others []int) {
	c = newListNodes(t, 3, 1)
	c.apply([]byte("a"))
	l := c.leader()
	lag, others = (l+1)%3, []int{l, (l + 2) % 3}
	c.net.Isolate(lag) // it misses n3's addition
	c.open(3, nil, []string{c.net.Addr(l)})
	require.Eventually(t, func() bool {
		return memberAs(c.nodes[c.leader()].Status().Servers, "n3", c.net.Addr(3))
	}, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return memberAs(c.nodes[3].Status().Servers, "n3", c.net.Addr(3)) }, 5*time.Second, 5*time.Millisecond)
	return c, lag, others
}

// TestNode_MembershipCallsEndWithTheirContext: a leader whose disk
// stalls in the middle of an append takes no request in raft's loop.
// RemoveServer, TransferLeadership and Leave asked of it return when
// their context ends, uncertain (the change may yet be made), rather
// than wait for the disk.
func TestNode_MembershipCallsEndWithTheirContext(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l := c.leader()
	f := (l + 1) % 3
	c.stalled[l].Store(true)
	applied := make(chan error, 1)
	go func() { applied <- c.nodes[l].rn.raft.Apply([]byte("x"), 10*time.Second).Error() }()
	var calls sync.WaitGroup
	t.Cleanup(func() { // after the disk is back: cleanups run last first
		<-applied
		calls.Wait()
	})
	t.Cleanup(func() { c.stalled[l].Store(false) })
	require.Eventually(t, c.inStall[l].Load, 10*time.Second, time.Millisecond, "raft's loop waits on the disk")

	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"RemoveServer", func(ctx context.Context) error { return c.nodes[l].RemoveServer(ctx, c.nodes[f].ID()) }},
		{"TransferLeadership", func(ctx context.Context) error { return c.nodes[l].TransferLeadership(ctx, c.nodes[f].ID()) }},
		{"Leave", func(ctx context.Context) error { return c.nodes[l].Leave(ctx) }},
	} {
		name, call := tc.name, tc.call
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		calls.Add(1)
		go func() {
			defer calls.Done()
			done <- call(ctx)
		}()
		select {
		case err := <-done:
			t.Logf("%s: %v", name, err)
			require.Error(t, err, name)
			require.Regexp(t, "^cluster: ", err.Error(), name)
			require.True(t, errors.Is(err, ErrUncertain) || errors.Is(err, ErrNoLeader), "%s: %v", name, err)
		case <-time.After(10 * time.Second):
			require.Failf(t, "no return", "%s outlived its context by 10s", name)
		}
	}
}

// TestNode_JoinEndsWithItsContext: the leader waits for a newcomer to
// catch up no longer than the newcomer waits for its answer. A Join that
// returned its context's error must not be carried on by the leader,
// which would make the node a voter later, unasked (and undo a Leave or
// a removal made meanwhile).
func TestNode_JoinEndsWithItsContext(t *testing.T) {
	c := newListNodes(t, 3, 1)
	l := c.leader()
	var futures []raft.ApplyFuture
	for i := range catchUpEntries + 200 { // more than a newcomer may lack to vote
		futures = append(futures, c.nodes[l].rn.raft.Apply([]byte(fmt.Sprint(i)), 10*time.Second))
	}
	for _, f := range futures {
		require.NoError(t, f.Error())
	}
	c.refuseRaft.Store(c.net.Addr(3)) // n3 cannot catch up
	c.open(3, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := c.nodes[3].Join(ctx, c.net.Addr(l))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "n3 could not catch up")

	c.refuseRaft.Store("") // n3 catches up now
	last := c.nodes[l].Status().LastIndex
	require.Eventually(t, func() bool { return c.nodes[3].Status().Commit >= last }, 20*time.Second, 10*time.Millisecond,
		"n3 catches up")
	time.Sleep(500 * time.Millisecond) // the leader looked at n3 every 50ms while it waited
	for _, s := range c.nodes[l].Status().Servers {
		if s.ID == "n3" {
			require.False(t, s.Voter, "n3 was made a voter after its Join had given up")
		}
	}
}

// TestNode_ANotYetReadyLeaderConfirmsOnceReady: a leader asked to
// confirm its leadership (as Leave and a rejoin ask) before it has applied
// its barrier answers once it has, within the asker's wait, rather than
// say at once that there is no leader: the asker would then act on the
// configuration it holds.
func TestNode_ANotYetReadyLeaderConfirmsOnceReady(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l := c.leader()
	f := (l + 1) % 3
	term := c.nodes[l].readyTerm.Load()
	c.nodes[l].readyTerm.Store(0) // as between its election and its barrier
	go func() {
		time.Sleep(200 * time.Millisecond)
		c.nodes[l].readyTerm.Store(term)
	}()
	s, err := c.nodes[f].askCluster(ctxT(t), []string{c.net.Addr(l)}, memberCheckTimeout, true)
	require.NoError(t, err, "the leader answers once ready")
	require.Equal(t, c.nodes[l].ID(), s.ID)
}
