package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
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
	// The status names the leader. An election in between (under -race on
	// a busy machine) may move it: then it is asked again, at most 5
	// times.
	for attempt := 0; ; attempt++ {
		s, err := r.Status(ctxT(t))
		require.NoError(t, err)
		require.Equal(t, c.nodes[f].ID(), s.ID)
		require.Len(t, s.Servers, 3)
		if s.LeaderID == c.nodes[l].ID() {
			break
		}
		require.Less(t, attempt, 5, "leadership kept moving")
		l = c.settle()
	}

	// Asked of a follower, both go to the leader; the transfer is asked
	// again after an election in between.
	for attempt := 0; ; attempt++ {
		require.NoError(t, r.TransferLeadership(ctxT(t), c.nodes[f].ID()))
		if c.leader() == f {
			break
		}
		require.Less(t, attempt, 5, "leadership kept moving")
	}
	other := (f + 1) % 3 // a follower now
	require.NoError(t, r.RemoveServer(ctxT(t), c.nodes[other].ID()))
	require.Eventually(t, func() bool { return len(c.nodes[f].Status().Servers) == 2 }, 5*time.Second, 5*time.Millisecond)
}

// TestRemote_WaitsOutAnElection: asked of a node that knows no leader (an
// election under way), a removal waits for one and is done; before, it
// failed at once with a NotLeaderError naming no leader.
func TestRemote_WaitsOutAnElection(t *testing.T) {
	c := newListNodes(t, 3, 0)
	c.apply([]byte("a"))
	l := c.leader()
	f1, f2 := (l+1)%3, (l+2)%3
	require.NoError(t, c.nodes[f2].Close())
	c.nodes[f2] = nil
	require.NoError(t, c.nodes[l].Close())
	c.nodes[l] = nil
	require.Eventually(t, func() bool { id, _ := c.nodes[f1].Leader(); return id == "" }, 5*time.Second, 5*time.Millisecond)
	r := NewRemote(c.nodes[f1].Addr())
	defer r.Close()
	reopened := make(chan *Node, 1)
	go func() {
		time.Sleep(time.Second) // f1 alone elects no one meanwhile
		n, err := c.openErr(l, nil, nil)
		if err != nil {
			t.Error(err)
		}
		reopened <- n
	}()
	err := r.RemoveServer(ctxT(t), fmt.Sprintf("n%d", f2))
	c.nodes[l] = <-reopened
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(c.nodes[f1].Status().Servers) == 2 }, 5*time.Second, 5*time.Millisecond)
}

// TestRemote_RightAfterTheLeaderDies: a follower still names the leader
// that just died; a Remote asking it waits out the election rather than
// fail on the dead leader's address.
func TestRemote_RightAfterTheLeaderDies(t *testing.T) {
	c := newListNodes(t, 3, 0)
	c.apply([]byte("a"))
	l := c.leader()
	f := (l + 1) % 3
	r := NewRemote(c.net.Addr(f))
	defer r.Close()
	require.NoError(t, c.nodes[l].Close())
	c.nodes[l] = nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.TransferLeadership(ctx, fmt.Sprintf("n%d", f)))
}

// replyLost is a connection whose reply the network loses: its first
// read waits until the request has been served, then finds the
// connection gone.
type replyLost struct{ net.Conn }

func (c *replyLost) Read([]byte) (int, error) {
	time.Sleep(200 * time.Millisecond)
	c.Conn.Close()
	return 0, io.ErrUnexpectedEOF
}

// TestRemote_RemovalWhoseReplyIsLost: a removal asked through a Remote
// (livekv cluster remove) whose reply the network lost is sent again, as
// Node.RemoveServer does, and the answer that the member is gone means
// done: the first request removed it.
func TestRemote_RemovalWhoseReplyIsLost(t *testing.T) {
	c := newListNodes(t, 3, 0)
	l := c.leader()
	gone := fmt.Sprintf("n%d", (l+1)%3)
	r := NewRemote(c.net.Addr(l))
	defer r.Close()
	dial := r.c.dial
	var lost atomic.Bool
	r.c.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := dial(ctx, addr)
		if err != nil || !lost.CompareAndSwap(false, true) {
			return conn, err
		}
		return &replyLost{conn}, nil
	}
	err := r.RemoveServer(ctxT(t), gone)
	require.True(t, lost.Load())
	require.Eventually(t, func() bool { return len(c.nodes[l].Status().Servers) == 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, err, "the member is gone")
}

// redirectingNodes starts n RPC servers on 127.0.0.1 that answer every
// request with a NotLeaderError naming the next (the last names the
// first), counting the requests each got. It returns their addresses.
func redirectingNodes(t *testing.T, n int, calls *atomic.Int64) []string {
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for i, ln := range lns {
		m := newMux(ln, addrs[i], nil)
		s := startRPCServer(m.rpc, func(*rpcRequest) *rpcResponse {
			calls.Add(1)
			return errorResponse(&NotLeaderError{ID: fmt.Sprint(i + 1), Addr: addrs[(i+1)%n]})
		}, minFrame)
		t.Cleanup(func() {
			m.Close()
			s.close()
		})
	}
	return addrs
}

// TestRemote_RedirectsEndAfterFiveHops: nodes that keep naming another
// as the leader are asked five times in all, then the request fails,
// without waiting for its context.
func TestRemote_RedirectsEndAfterFiveHops(t *testing.T) {
	var calls atomic.Int64
	addrs := redirectingNodes(t, 3, &calls)
	r := NewRemote(addrs[0])
	defer r.Close()
	err := r.TransferLeadership(ctxT(t), "n1")
	require.ErrorIs(t, err, ErrNoLeader)
	require.ErrorContains(t, err, "too many redirects")
	require.Equal(t, int64(maxHops), calls.Load())
}

// TestFollowRedirects: a redirect is followed while it names a leader,
// maxHops calls at most; the last address called and its answer are
// returned.
func TestFollowRedirects(t *testing.T) {
	next := func(to string) error { return &NotLeaderError{Addr: to} }
	var called []string
	answers := map[string]error{"a": next("b"), "b": next("c"), "c": nil}
	last, err := followRedirects("a", func(addr string) error { called = append(called, addr); return answers[addr] })
	require.NoError(t, err)
	require.Equal(t, "c", last)
	require.Equal(t, []string{"a", "b", "c"}, called)

	called = nil
	answers = map[string]error{"a": next("b"), "b": next("")} // an election under way
	last, err = followRedirects("a", func(addr string) error { called = append(called, addr); return answers[addr] })
	require.ErrorIs(t, err, ErrNotLeader)
	require.False(t, redirects(err))
	require.Equal(t, "b", last)
	require.Equal(t, []string{"a", "b"}, called)

	called = nil
	last, err = followRedirects("0", func(addr string) error { called = append(called, addr); return next(addr + "+") })
	require.True(t, redirects(err), "the hops ran out")
	require.Equal(t, []string{"0", "0+", "0++", "0+++", "0++++"}, called)
	require.Equal(t, "0++++", last)
}
