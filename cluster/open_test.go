package cluster

import (
	"context"
	"net"
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
