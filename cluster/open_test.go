package cluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/leaktest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestOpenContext_EndsAJoinNobodyAnswers: a newcomer whose join nobody
// answers waits in Open for up to two minutes. Its context ends that
// wait: OpenContext returns the context's error, leaves no goroutine
// running and every file closed, and the folder opens again.
func TestOpenContext_EndsAJoinNobodyAnswers(t *testing.T) {
	defer goleak.VerifyNone(t, append(leaktest.Ignores(), goleak.IgnoreCurrent())...)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, dead.Close()) // nothing answers there
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		n, err := OpenContext(ctx, dir, &Options{NodeID: "n1", RaftAddr: addr, Listener: ln,
			Join: []string{dead.Addr().String()}, Profile: ProfileLAN})
		if n != nil {
			n.Close()
		}
		opened <- err
	}()
	time.Sleep(300 * time.Millisecond) // the join is asked, in vain
	cancel()
	select {
	case err := <-opened:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("Open went on after its context ended")
	}

	// The folder and the address are free: the node founds a cluster there.
	n, err := OpenContext(context.Background(), dir, &Options{NodeID: "n1", RaftAddr: addr,
		Peers: []Peer{{ID: "n1", Addr: addr}}, Profile: ProfileLAN})
	require.NoError(t, err)
	_, _, err = n.WaitLeader(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, n.Close())
}

// TestOpenContext_EndedBeforeOpensNothing: a context over already
// opens nothing.
func TestOpenContext_EndedBeforeOpensNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := OpenContext(ctx, t.TempDir(), &Options{NodeID: "n1", RaftAddr: "127.0.0.1:0",
		Peers: []Peer{{ID: "n1", Addr: "127.0.0.1:0"}}})
	require.ErrorIs(t, err, context.Canceled)
}

// TestOpenContext_FailureClosesTheListener: Options.Listener is the
// node's to close, on a failed opening too: an ended context, options
// refused, an engine that does not open.
func TestOpenContext_FailureClosesTheListener(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	for name, c := range map[string]struct {
		ctx  context.Context
		dir  string
		opts func(ln net.Listener) *Options
	}{
		"ended": {ended, t.TempDir(), func(ln net.Listener) *Options {
			return &Options{NodeID: "n1", RaftAddr: ln.Addr().String(), Listener: ln, Peers: []Peer{{ID: "n1", Addr: ln.Addr().String()}}}
		}},
		"refused": {context.Background(), t.TempDir(), func(ln net.Listener) *Options {
			return &Options{NodeID: "", RaftAddr: ln.Addr().String(), Listener: ln}
		}},
		"no folder": {context.Background(), notDir, func(ln net.Listener) *Options {
			return &Options{NodeID: "n1", RaftAddr: ln.Addr().String(), Listener: ln, Peers: []Peer{{ID: "n1", Addr: ln.Addr().String()}}}
		}},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		_, err = OpenContext(c.ctx, c.dir, c.opts(ln))
		require.Error(t, err, name)
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second)) // fails once closed
		_, err = ln.Accept()
		require.ErrorIs(t, err, net.ErrClosed, "%s: the listener is still open", name)
		ln.Close()
	}
}

// TestOpenContext_AbandonedJoinPromotesNoLaterNode: a newcomer's
// OpenContext is cancelled while the leader, which could not reach it,
// waited to make it a voter; the node is opened again at once on an
// empty folder. The leader's old wait, still running, must not make that
// node, whose raft takes part in nothing yet, a voter: its own join then
// found it a voter with no raft state and was refused, and the cluster
// kept a voter that never answers (here, half its voters).
func TestOpenContext_AbandonedJoinPromotesNoLaterNode(t *testing.T) {
	c := newDBCluster(t, 1, nil, 1)
	open := func(ctx context.Context) (*Node, error) {
		ln, err := c.net.Listener(1)
		require.NoError(t, err)
		return OpenContext(ctx, filepath.Join(c.dir, "n1"), &Options{NodeID: "n1", RaftAddr: c.net.Addr(1),
			Join: []string{c.net.Addr(0)}, Profile: ProfileLAN, Listener: ln, Dial: c.net.Dialer(1), WriteTimeout: 5 * time.Second})
	}
	c.net.Link(0, 1).Cut() // the leader cannot reach the newcomer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan error, 1)
	go func() {
		n, err := open(ctx)
		if n != nil {
			n.Close()
		}
		opened <- err
	}()
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(c.node(0).Status().Servers, func(s Server) bool { return s.ID == "n1" })
	}, 10*time.Second, 5*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // the newcomer asks to be a voter; the leader waits for it
	cancel()
	require.ErrorIs(t, <-opened, context.Canceled)

	require.NoError(t, os.RemoveAll(filepath.Join(c.dir, "n1")))
	c.net.Heal()
	c.net.Link(1, 0).SetDelay(300 * time.Millisecond) // its join arrives after the leader has seen it
	n, err := open(context.Background())
	require.NoError(t, err)
	defer func() { require.NoError(t, n.Close()) }()
	c.net.Heal()
	require.Eventually(t, func() bool { return memberAs(c.node(0).Status().Servers, "n1", c.net.Addr(1)) },
		10*time.Second, 5*time.Millisecond, "%+v", c.node(0).Status().Servers)
	_, err = c.node(0).Set("k", "v", nil) // a quorum of the two answers
	require.NoError(t, err)
}
