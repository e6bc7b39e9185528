package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
	"github.com/stretchr/testify/require"
)

func TestRPC_FramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := &rpcRequest{Op: opJoin, ID: "n4", Addr: "127.0.0.1:7004", Key: "k", Value: "v", Rev: 7}
	require.NoError(t, writeFrame(&buf, req, minFrame))
	var got rpcRequest
	require.NoError(t, readFrame(&buf, &got, minFrame))
	require.Equal(t, *req, got)

	// Keys and values that are not UTF-8 arrive byte for byte, as do the
	// results of writes.
	bin := &rpcRequest{Op: opSet, Key: "bin\xff", Value: "v\xfe\x80"}
	require.NoError(t, writeFrame(&buf, bin, minFrame))
	got = rpcRequest{}
	require.NoError(t, readFrame(&buf, &got, minFrame))
	require.Equal(t, *bin, got)
	res := &result{Key: "k\x80", Value: "\xff", Revision: 3}
	require.NoError(t, writeFrame(&buf, res, minFrame))
	var gotRes result
	require.NoError(t, readFrame(&buf, &gotRes, minFrame))
	require.Equal(t, *res, gotRes)

	// A length over the limit is refused before anything is allocated.
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], minFrame+1)
	require.ErrorIs(t, readFrame(bytes.NewReader(h[:]), &got, minFrame), errFrameTooLarge)
}

func TestRPC_ErrorsKeepTheirIdentity(t *testing.T) {
	for _, sentinel := range []error{
		ErrNoLeader, ErrNotCommitted, ErrUncertain, ErrBehind, ErrClosed,
		engine.ErrNotFound, engine.ErrConflict, engine.ErrNotInteger, engine.ErrTooLarge,
		engine.ErrInvalidKey,
	} {
		err := fmt.Errorf("%w: key %q", sentinel, "k")
		var buf bytes.Buffer
		require.NoError(t, writeFrame(&buf, errorResponse(err), minFrame))
		var resp rpcResponse
		require.NoError(t, readFrame(&buf, &resp, minFrame))
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
			require.NoError(t, writeFrame(&buf, errorResponse(err), minFrame))
			var resp rpcResponse
			require.NoError(t, readFrame(&buf, &resp, minFrame))
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
		require.NoError(f, writeFrame(&buf, v, minFrame))
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 9, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req rpcRequest
		if err := readFrame(bytes.NewReader(b), &req, minFrame); err == nil {
			var buf bytes.Buffer
			require.NoError(t, writeFrame(&buf, &req, minFrame))
			var again rpcRequest
			require.NoError(t, readFrame(&buf, &again, minFrame))
			require.Equal(t, req, again)
		}
		var resp rpcResponse
		if err := readFrame(bytes.NewReader(b), &resp, minFrame); err == nil {
			_ = resp.err()
		}
	})
}

// A frame holds a request or a result with a key and a value as large as
// the node's engine takes, whatever their bytes: JSON would escape a
// control byte into six, so such strings go as base64.
func TestRPC_FrameLimitHoldsTheLargestWrite(t *testing.T) {
	for _, eo := range []*engine.Options{nil, {MaxKeySize: 4 << 10, MaxValueSize: 9 << 20}} {
		limit := frameLimit(eo)
		k, v := engine.DefaultMaxKeySize, engine.DefaultMaxValueSize
		if eo != nil {
			k, v = eo.MaxKeySize, eo.MaxValueSize
		}
		for _, b := range []string{"\x01", "<", "x", "\xff"} {
			key, value := strings.Repeat(b, k), strings.Repeat(b, v)
			var buf bytes.Buffer
			req := &rpcRequest{Op: opSet, Key: wireString(key), Value: wireString(value), TTL: time.Hour, Left: time.Second}
			require.NoError(t, writeFrame(&buf, req, limit), "%q", b)
			require.LessOrEqual(t, buf.Len(), 4+wireLen(k)+wireLen(v)+frameRoom)
			var got rpcRequest
			require.NoError(t, readFrame(&buf, &got, limit))
			require.True(t, string(got.Key) == key && string(got.Value) == value, "%q", b)

			res := &rpcResponse{Result: &result{Key: wireString(key), Value: wireString(value), Revision: 1, ExpiresAt: time.Now()}}
			require.NoError(t, writeFrame(&buf, res, limit), "%q", b)
			var gotRes rpcResponse
			require.NoError(t, readFrame(&buf, &gotRes, limit))
			require.True(t, string(gotRes.Result.Value) == value, "%q", b)
		}
	}
	require.Equal(t, minFrame, frameLimit(&engine.Options{MaxValueSize: 10}))
	require.Less(t, frameLimit(&engine.Options{MaxValueSize: 1 << 30}), 100<<20, "at most a raft entry's record")

	// A frame over the limit is not written at all.
	var buf bytes.Buffer
	err := writeFrame(&buf, &rpcRequest{Op: opSet, Value: wireString(strings.Repeat("x", minFrame))}, minFrame)
	require.ErrorIs(t, err, errFrameTooLarge)
	require.Zero(t, buf.Len())
}

func TestWireString_Shortest(t *testing.T) {
	for s, want := range map[string]string{
		"abc":          `"abc"`,
		"<>":           `"\u003c\u003e"`,
		"<<<<<<":       `{"b64":"PDw8PDw8"}`,
		"\x01\x02\x03": `{"b64":"AQID"}`,
		"\xff":         `{"b64":"/w=="}`,
		"":             `""`,
		"é and ü ✓":    `"é and ü ✓"`,
	} {
		b, err := json.Marshal(wireString(s))
		require.NoError(t, err)
		require.Equal(t, want, string(b), "%q", s)
		var got wireString
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, s, string(got))
	}
}

// TestRPC_PooledConnectionsOfARestartedLeader: a follower pools its
// connections to the leader; once the leader has restarted (at its
// address) and leads again, the pooled connections are dead. Forwarded
// writes must not go out on them, which would fail with no reply and be
// reported ErrUncertain though they never reached the leader: each of
// 20 writes after the restart commits. Run again if leadership moved
// while they were forwarded (under -race on a busy machine).
func TestRPC_PooledConnectionsOfARestartedLeader(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 3, "leadership kept moving")
		li := c.settle()
		f := (li + 1) % 3
		var wg sync.WaitGroup
		for i := range 16 { // 16 connections pooled, f to li
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = c.node(f).Set(fmt.Sprintf("p%d", i), "v", nil)
			}()
		}
		wg.Wait()
		c.kill(li)
		c.restart(li)
		require.Eventually(t, func() bool {
			l := c.leader()
			if l == li {
				return true
			}
			_ = c.node(l).TransferLeadership(context.Background(), c.peers[li].ID)
			return false
		}, 30*time.Second, 100*time.Millisecond, "leadership never came back to the restarted node")
		if c.settle() != li {
			continue
		}
		var errs []error
		if !c.steady(li, "Leader", func() {
			for i := range 20 {
				_, err := c.node(f).Set(fmt.Sprintf("q%d.%d", attempt, i), "v", nil)
				errs = append(errs, err)
			}
		}) {
			continue
		}
		for i, err := range errs {
			require.NoError(t, err, "write %d through the follower", i)
		}
		return
	}
}

// A node answers requests from the moment it listens: while it starts,
// that it knows no leader yet, at once, so that a node starting beside
// it, asking whether the cluster has run, does not wait a timeout out.
func TestNode_StartingNodeAnswersAtOnce(t *testing.T) {
	n := &Node{}
	for _, op := range []string{opStatus, opReadIndex, opSet, opJoin} {
		err := n.handle(&rpcRequest{Op: op}).err()
		require.ErrorIs(t, err, ErrNotLeader, op)
		var nl *NotLeaderError
		require.ErrorAs(t, err, &nl)
		require.Empty(t, nl.Addr, "no leader known")
	}
}

// shortWriteConn is a connection whose writes fail after accepting n
// bytes, as a socket whose peer reset it in the middle of a frame.
type shortWriteConn struct {
	net.Conn
	n int
}

func (c *shortWriteConn) Write(p []byte) (int, error) {
	return min(c.n, len(p)), syscall.EPIPE
}

// TestRPC_AFrameNotWrittenWholeWasNotSent: a request whose frame the
// socket did not take whole cannot have been read by the peer, so it may
// go again whatever it is, a write too; and a forwarded write that could
// not be sent is not reported uncertain.
func TestRPC_AFrameNotWrittenWholeWasNotSent(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &rpcClient{dial: func(context.Context, string) (net.Conn, error) { return &shortWriteConn{Conn: a, n: 3}, nil },
		maxFrame: 1 << 20, idle: map[string][]net.Conn{}}
	_, err := c.call(ctxT(t), "leader", &rpcRequest{Op: opSet, Key: "k", Value: "v"})
	require.Error(t, err)
	require.True(t, retryable(err, false), "a write that was not sent may go again: %v", err)
}
