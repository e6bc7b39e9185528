package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

func TestRPC_FramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := &rpcRequest{Op: opJoin, ID: "n4", Addr: "127.0.0.1:7004", Key: "k", Value: "v", Rev: 7}
	require.NoError(t, writeFrame(&buf, req))
	var got rpcRequest
	require.NoError(t, readFrame(&buf, &got))
	require.Equal(t, *req, got)

	// A length over the limit is refused before anything is allocated.
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], maxFrame+1)
	require.ErrorIs(t, readFrame(bytes.NewReader(h[:]), &got), errFrameTooLarge)
}

func TestRPC_ErrorsKeepTheirIdentity(t *testing.T) {
	for _, sentinel := range []error{
		ErrNoLeader, ErrNotCommitted, ErrUncertain, ErrBehind, ErrClosed,
		engine.ErrNotFound, engine.ErrConflict, engine.ErrNotInteger, engine.ErrTooLarge,
		engine.ErrInvalidKey,
	} {
		err := fmt.Errorf("%w: key %q", sentinel, "k")
		var buf bytes.Buffer
		require.NoError(t, writeFrame(&buf, errorResponse(err)))
		var resp rpcResponse
		require.NoError(t, readFrame(&buf, &resp))
		got := resp.err()
		require.ErrorIs(t, got, sentinel)
		require.Equal(t, err.Error(), got.Error())
	}
	resp := errorResponse(&NotLeaderError{ID: "n2", Addr: "127.0.0.1:2"})
	var nl *NotLeaderError
	require.ErrorAs(t, resp.err(), &nl)
	require.Equal(t, NotLeaderError{ID: "n2", Addr: "127.0.0.1:2"}, *nl)
	require.ErrorIs(t, resp.err(), ErrNotLeader)

	require.NoError(t, (&rpcResponse{}).err())
	require.Error(t, (&rpcResponse{Err: "boom", Code: "other"}).err())
}

func FuzzReadFrame(f *testing.F) {
	for _, v := range []any{
		&rpcRequest{Op: opStatus},
		&rpcRequest{Op: opJoin, ID: "n1", Addr: "127.0.0.1:1"},
		&rpcResponse{Index: 42, Status: &Status{ID: "n1", Servers: []Server{{ID: "n1", Voter: true}}}},
		errorResponse(&NotLeaderError{ID: "n2", Addr: "a"}),
	} {
		var buf bytes.Buffer
		require.NoError(f, writeFrame(&buf, v))
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 9, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req rpcRequest
		if err := readFrame(bytes.NewReader(b), &req); err == nil {
			var buf bytes.Buffer
			require.NoError(t, writeFrame(&buf, &req))
			var again rpcRequest
			require.NoError(t, readFrame(&buf, &again))
			require.Equal(t, req, again)
		}
		var resp rpcResponse
		if err := readFrame(bytes.NewReader(b), &resp); err == nil {
			_ = resp.err()
		}
	})
}
