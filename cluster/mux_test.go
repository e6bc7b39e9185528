package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMux_RoutesByFirstByte(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newMux(ln, ln.Addr().String(), nil)
	defer m.Close()
	require.Equal(t, ln.Addr().String(), m.raft.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		proto byte
		l     *subListener
	}{{protoRaft, m.raft}, {protoRPC, m.rpc}} {
		c, err := m.dialProto(ctx, ln.Addr().String(), tc.proto)
		require.NoError(t, err)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		s, err := tc.l.Accept()
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(s, buf)
		require.NoError(t, err)
		require.Equal(t, "ping", string(buf), "the first byte is consumed, the rest arrives")
	}

	// An unknown first byte is hung up on.
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte{9, 'x'})
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.Error(t, err, "the mux hangs up (EOF or reset, depending on unread data)")
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "got a timeout, want a hang-up")
}

func TestMux_CloseEndsAcceptAndConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newMux(ln, ln.Addr().String(), nil)
	c, err := m.dialProto(context.Background(), ln.Addr().String(), protoRPC)
	require.NoError(t, err)
	s, err := m.rpc.Accept()
	require.NoError(t, err)

	// Closing one service leaves the other serving.
	require.NoError(t, m.raft.Close())
	_, err = m.raft.Accept()
	require.ErrorIs(t, err, net.ErrClosed)

	errc := make(chan error, 1)
	go func() {
		_, err := m.rpc.Accept()
		errc <- err
	}()
	require.NoError(t, m.Close())
	require.ErrorIs(t, <-errc, net.ErrClosed)
	_, err = s.Read(make([]byte, 1))
	require.Error(t, err, "accepted connections are closed")
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "dialed connections are closed")
	_, err = m.dialProto(context.Background(), ln.Addr().String(), protoRaft)
	require.True(t, errors.Is(err, ErrClosed), "got %v", err)
}

// TestMux_GatedRaftHangsUpUntilOpen: a gated mux hangs up on raft's
// connections, and serves the RPC, until openRaft: a fresh node's raft
// takes part in nothing before a leader accepts it.
func TestMux_GatedRaftHangsUpUntilOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := newGatedMux(ln, ln.Addr().String(), nil, nil)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c, err := m.dialProto(ctx, ln.Addr().String(), protoRaft)
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.Error(t, err)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "got a timeout, want a hang-up")
	c, err = m.dialProto(ctx, ln.Addr().String(), protoRPC)
	require.NoError(t, err)
	_, err = m.rpc.Accept()
	require.NoError(t, err, "the RPC is served meanwhile")
	c.Close()

	m.openRaft()
	c, err = m.dialProto(ctx, ln.Addr().String(), protoRaft)
	require.NoError(t, err)
	defer c.Close()
	s, err := m.raft.Accept()
	require.NoError(t, err)
	s.Close()
}

// newMux starts serving ln; advertise is the address other nodes dial.
func newMux(ln net.Listener, advertise string, dial func(ctx context.Context, addr string) (net.Conn, error)) *mux {
	m := newGatedMux(ln, advertise, dial, nil)
	m.openRaft()
	return m
}
