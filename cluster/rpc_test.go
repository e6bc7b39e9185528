package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

func TestRPC_FramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := &rpcRequest{Op: opJoin, ID: "n4", Addr: "127.0.0.1:7004", Key: "k", Value: "v", Rev: 7}
	require.NoError(t, writeFrame(&buf, req))
	var got rpcRequest
	require.NoError(t, readFrame(&buf, &got))
	require.Equal(t, *req, got)

	// Keys and values that are not UTF-8 arrive byte for byte, as do the
	// results of writes.
	bin := &rpcRequest{Op: opSet, Key: "bin\xff", Value: "v\xfe\x80"}
	require.NoError(t, writeFrame(&buf, bin))
	got = rpcRequest{}
	require.NoError(t, readFrame(&buf, &got))
	require.Equal(t, *bin, got)
	res := &result{Key: "k\x80", Value: "\xff", Revision: 3}
	require.NoError(t, writeFrame(&buf, res))
	var gotRes result
	require.NoError(t, readFrame(&buf, &gotRes))
	require.Equal(t, *res, gotRes)

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

// TestErrors_Codes checks the code each error a client may meet gives
// the adapter (see codedError), here and forwarded from the leader; an
// uncertain write keeps its code whatever error it wraps.
func TestErrors_Codes(t *testing.T) {
	type coded interface{ ErrorCode() string }
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrClosed, wire.CodeNodeClosed},
		{ErrNotLeader, wire.CodeNotLeader},
		{&NotLeaderError{ID: "n2", Addr: "a"}, wire.CodeNotLeader},
		{ErrNoLeader, wire.CodeNoLeader},
		{ErrNotCommitted, wire.CodeNotCommitted},
		{writeError(fmt.Errorf("commit: %w", engine.ErrAbandoned)), wire.CodeNotCommitted},
		{ErrUncertain, wire.CodeUncertain},
		{fmt.Errorf("%w: %w", ErrUncertain, ErrClosed), wire.CodeUncertain},
		{fmt.Errorf("%w: %w", ErrUncertain, &NotLeaderError{ID: "n2", Addr: "a"}), wire.CodeUncertain},
		{fmt.Errorf("%w: %w", ErrUncertain, ErrNoLeader), wire.CodeUncertain},
		{ErrBehind, wire.CodeBehind},
	} {
		for _, err := range []error{c.err, fmt.Errorf("%w: key %q", c.err, "k")} {
			var buf bytes.Buffer
			require.NoError(t, writeFrame(&buf, errorResponse(err)))
			var resp rpcResponse
			require.NoError(t, readFrame(&buf, &resp))
			for where, e := range map[string]error{"here": err, "forwarded": resp.err()} {
				var ce coded
				require.ErrorAs(t, e, &ce, "%s: %v", where, e)
				require.Equal(t, c.code, ce.ErrorCode(), "%s: %v", where, e)
			}
		}
	}
	var ce interface{ ErrorCode() string }
	require.False(t, errors.As(ErrInvalidOptions, &ce), "not an error of a request")
	require.False(t, errors.As((&rpcResponse{Err: "boom", Code: "other"}).err(), &ce))
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
