//go:build unix

package cluster

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPeerClosed: an idle connection whose peer is there is open; one
// whose peer closed it, or sent a byte unasked, is not; a connection
// that reads nothing is left as it was.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() (net.Conn, net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		return c, <-accepted
	}
	open, peer1 := dial()
	defer open.Close()
	defer peer1.Close()
	require.False(t, peerClosed(open))
	require.False(t, peerClosed(&muxConn{Conn: open}), "through the mux's wrapper")
	_, err = peer1.Write([]byte("x"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return peerClosed(open) }, 5*time.Second, time.Millisecond, "a byte unasked")

	closed, peer2 := dial()
	defer closed.Close()
	require.False(t, peerClosed(closed))
	require.NoError(t, peer2.Close())
	require.Eventually(t, func() bool { return peerClosed(closed) }, 5*time.Second, time.Millisecond, "the peer closed it")
}
