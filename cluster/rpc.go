package cluster

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/livekv/livekv/engine"
)

// The cluster RPC runs on connections whose first byte is protoRPC. Each
// carries requests one at a time, each answered before the next is sent:
//
//	frame    := length(uint32, big endian) JSON
//	request  := frame holding an rpcRequest
//	response := frame holding an rpcResponse
//
// A connection goes back to its pool after a full exchange; any error
// closes it.

// minFrame is the least limit of an RPC frame: more than a key and a
// value of the engine's default sizes take (frameLimit).
const minFrame = 8 << 20

// frameRoom is what a frame holds besides its key and value, with
// room to spare: the operation, revisions, times, an error's text.
const frameRoom = 64 << 10

// frameLimit is the largest RPC frame a node sends or takes, from its
// engine's options (nil: the defaults): room for a request or a result
// holding a key and a value as large as the engine takes, at least
// minFrame, and no more than a transaction record of a raft entry may
// hold (maxRecord), since a larger write is refused anyway. Every node
// of a cluster should have the same limits; a node with smaller ones
// refuses frames over its own.
func frameLimit(eo *engine.Options) int {
	k, v := engine.DefaultMaxKeySize, engine.DefaultMaxValueSize
	if eo != nil && eo.MaxKeySize > 0 {
		k = eo.MaxKeySize
	}
	if eo != nil && eo.MaxValueSize > 0 {
		v = eo.MaxValueSize
	}
	n := min(wireLen(k)+wireLen(v), wireLen(maxRecord)) + frameRoom
	return max(n, minFrame)
}

// wireLen is the most a wireString of n bytes takes in a frame: its
// base64 form, which MarshalJSON sends when the string is shorter.
func wireLen(n int) int { return base64.StdEncoding.EncodedLen(n) + len(`{"b64":""}`) }

// wireString is a key or a value on the RPC: a JSON string when it is
// valid UTF-8 and no longer so than in base64, else {"b64": its bytes in
// base64}, since a JSON string would have its bytes that are not UTF-8
// replaced with U+FFFD, and the engine takes any bytes. Escapes can make
// a JSON string six times as long as its bytes (\u0001), base64 a third
// longer: so a frame's size follows from the engine's limits
// (frameLimit).
type wireString string

func (w wireString) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(w)) {
		b, err := json.Marshal(string(w))
		if err != nil || len(b) <= wireLen(len(w)) {
			return b, err
		}
	}
	// What json.Marshal makes of a struct{ B64 []byte `json:"b64"` },
	// written directly: a string that came here has been encoded once
	// already.
	b := make([]byte, 0, wireLen(len(w)))
	b = append(b, `{"b64":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(w))
	return append(b, `"}`...), nil
}

func (w *wireString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			B64 []byte `json:"b64"`
		}
		err := json.Unmarshal(b, &o)
		*w = wireString(o.B64)
		return err
	}
	var s string
	err := json.Unmarshal(b, &s)
	*w = wireString(s)
	return err
}

// rpcTimeout bounds one RPC exchange unless the caller's context is
// shorter.
const rpcTimeout = 10 * time.Second

// errFrameTooLarge is returned when a frame's length is over the limit.
var errFrameTooLarge = errors.New("cluster: rpc frame too large")

// RPC operations.
const (
	opStatus    = "status"
	opJoin      = "join"
	opReadIndex = "readindex"
	opLease     = "lease"
	opRemove    = "remove"
	opTransfer  = "transfer"
)

// rpcRequest is every request of the cluster RPC; Op says which fields
// mean something.
type rpcRequest struct {
	Op string `json:"op"`

	// join
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Fresh says that the joining node has no raft state, and its raft
	// takes part in nothing yet: the leader adds it as a non-voter and
	// answers at once, unless the ID is a voter (the folder of a member
	// was lost), which it refuses. The node then asks again without it.
	Fresh bool `json:"fresh,omitempty"`
	// Incarnation names the joining node's opening (Node.incarnation);
	// its status answers with it (rpcResponse.Incarnation).
	Incarnation string `json:"inc,omitempty"`

	// status: Confirm asks a leader to confirm its leadership (a
	// read-index round, or its lease) before it answers, so that one
	// deposed and not aware of it yet gives no configuration older than
	// the cluster's.
	Confirm bool `json:"confirm,omitempty"`

	// lease: the asking leader's term (ID is its node ID)
	Term uint64 `json:"term,omitempty"`

	// single-operation writes
	Key   wireString    `json:"key,omitempty"`
	Value wireString    `json:"value,omitempty"`
	TTL   time.Duration `json:"ttl,omitempty"`
	Rev   int64         `json:"rev,omitempty"`
	Delta int64         `json:"delta,omitempty"`
	// Left is how long the sending node still waits for the answer,
	// as it sent the request (0: not said).
	Left time.Duration `json:"left,omitempty"`
}

// rpcResponse is every response; Err, if set, is the error, with Code
// naming its sentinel so that the caller gets errors.Is right.
type rpcResponse struct {
	Err  string `json:"err,omitempty"`
	Code string `json:"code,omitempty"`

	LeaderID   string `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_addr,omitempty"`

	Incarnation string `json:"inc,omitempty"` // status: the answering node's Node.incarnation

	Left   int64   `json:"left,omitempty"` // lease: ns the follower still refuses votes to others, by its own heartbeat timeout
	Index  uint64  `json:"index,omitempty"`
	Rev    int64   `json:"rev,omitempty"`
	Status *Status `json:"status,omitempty"`
	Result *result `json:"result,omitempty"`
}

// result is what a forwarded write returns.
type result struct {
	Key            wireString `json:"key,omitempty"`
	Value          wireString `json:"value,omitempty"`
	Revision       int64      `json:"rev,omitempty"`
	CreateRevision int64      `json:"create_rev,omitempty"`
	Version        int64      `json:"version,omitempty"`
	ExpiresAt      time.Time  `json:"expires_at,omitzero"`
	N              int64      `json:"n,omitempty"`
}

// writeFrame writes v as one frame of at most limit bytes; a larger one
// is not written at all.
func writeFrame(w io.Writer, v any, limit int) error {
	b, err := encodeFrame(v, limit)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// encodeFrame returns v as a frame of at most limit bytes, its length
// first, or errFrameTooLarge.
func encodeFrame(v any, limit int) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %d bytes, over the %d a frame may hold", errFrameTooLarge, len(b), limit)
	}
	buf := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	return append(buf, b...), nil
}

// readFrame reads one frame of at most limit bytes into v.
func readFrame(r io.Reader, v any, limit int) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(h[:])
	if uint64(n) > uint64(limit) {
		return fmt.Errorf("%w: %d bytes, over the %d a frame may hold", errFrameTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("cluster: bad rpc frame: %w", err)
	}
	return nil
}

// rpcClient sends requests to other nodes over pooled connections.
type rpcClient struct {
	dial     func(ctx context.Context, addr string) (net.Conn, error) // opens an RPC connection
	maxFrame int                                                      // frameLimit

	mu   sync.Mutex            // guards idle
	idle map[string][]net.Conn // by address
}

// maxIdlePerAddr bounds the idle connections kept per node. It is as
// large as the writers a follower forwards at once in the benchmarks:
// a call that finds no idle connection dials one, and one closed after
// each call leaves a socket in TIME_WAIT, so that under load the local
// ports run out and calls fail until they are freed.
const maxIdlePerAddr = 64

func newRPCClient(m *mux, maxFrame int) *rpcClient {
	return &rpcClient{dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return m.dialProto(ctx, addr, protoRPC)
	}, maxFrame: maxFrame, idle: map[string][]net.Conn{}}
}

// call sends req to addr and returns its response; an error in the
// response is returned as an error too. A request too large for a frame
// is engine.ErrTooLarge, and was not sent.
func (c *rpcClient) call(ctx context.Context, addr string, req *rpcRequest) (*rpcResponse, error) {
	frame, err := encodeFrame(req, c.maxFrame)
	if errors.Is(err, errFrameTooLarge) {
		return nil, fmt.Errorf("%w: %w", engine.ErrTooLarge, err)
	} else if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rpcTimeout)
		defer cancel()
	}
	conn, dialed, err := c.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	var resp rpcResponse
	if n, werr := conn.Write(frame); werr != nil && n < len(frame) {
		err = &notSentError{withTLSAlert(conn, werr)} // the peer cannot have read a frame cut short
	}
	if err == nil {
		// A new connection's first read may be the peer's TLS verdict:
		// counted, so that one that read nothing can tell. (A pooled
		// one is read as is: it has had an answer.)
		var r io.Reader = conn
		var counted *countingReader
		if dialed {
			counted = &countingReader{r: conn}
			r = counted
		}
		err = readFrame(r, &resp, c.maxFrame)
		if counted != nil && counted.n == 0 && tlsRefused(err) {
			// Under TLS 1.3 the peer's verdict on this node's
			// certificate comes after the handshake, with the first
			// read: a peer that refused it read nothing past it.
			err = &notSentError{err}
		}
	}
	if !stop() || err != nil {
		conn.Close()
		if err == nil || ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	c.put(addr, conn)
	return &resp, resp.err()
}

// get returns an idle connection to addr, or else dials one. An idle
// connection that its peer has closed (it restarted, say) is closed and
// passed over: a request written to it would find no reply, and a write
// forwarded that way would be reported uncertain though it never reached
// the leader.
//
// dialed reports that the connection is a new one.
func (c *rpcClient) get(ctx context.Context, addr string) (conn net.Conn, dialed bool, err error) {
	for {
		c.mu.Lock()
		cs := c.idle[addr]
		if len(cs) == 0 {
			c.mu.Unlock()
			conn, err := c.dial(ctx, addr)
			return conn, true, err
		}
		conn := cs[len(cs)-1]
		c.idle[addr] = cs[:len(cs)-1]
		c.mu.Unlock()
		if !peerClosed(conn) {
			return conn, false, nil
		}
		conn.Close()
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *rpcClient) put(addr string, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle == nil || len(c.idle[addr]) >= maxIdlePerAddr {
		conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], conn)
}

// close closes the idle connections; later calls dial afresh and fail
// once the mux is closed.
func (c *rpcClient) close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, cs := range idle {
		for _, conn := range cs {
			conn.Close()
		}
	}
}

// rpcServer answers the cluster RPC on the mux's RPC listener.
type rpcServer struct {
	l        *subListener
	handle   func(*rpcRequest) *rpcResponse
	maxFrame int // frameLimit
	wg       sync.WaitGroup
}

func startRPCServer(l *subListener, handle func(*rpcRequest) *rpcResponse, maxFrame int) *rpcServer {
	s := &rpcServer{l: l, handle: handle, maxFrame: maxFrame}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *rpcServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.serve(conn)
	}
}

func (s *rpcServer) serve(conn net.Conn) {
	defer s.wg.Done()
	defer conn.Close()
	for {
		var req rpcRequest
		if err := readFrame(conn, &req, s.maxFrame); err != nil {
			return
		}
		if err := writeFrame(conn, s.handle(&req), s.maxFrame); err != nil {
			return
		}
	}
}

// close stops accepting and waits for the connections being served; the
// mux closes those connections, so close must follow the mux's Close.
func (s *rpcServer) close() {
	s.l.Close()
	s.wg.Wait()
}
