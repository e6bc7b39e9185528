package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The first byte a connection sends names the service it is for.
const (
	protoRaft byte = 1
	protoRPC  byte = 2
)

// headerTimeout bounds how long an accepted connection may take to send
// its first byte, so that a silent client cannot hold a goroutine.
const headerTimeout = 5 * time.Second

// errMuxClosed is what the mux's listeners return from Accept once closed.
var errMuxClosed = fmt.Errorf("cluster: listener closed: %w", net.ErrClosed)

// mux serves raft and the cluster RPC on one TCP port: it accepts every
// connection, reads its first byte and hands it to the listener that byte
// names. It also owns every connection the node dials or accepts, so that
// Close can end them all and with them the goroutines that serve them.
type mux struct {
	ln   net.Listener
	addr net.Addr // the advertised address, RaftAddr
	dial func(ctx context.Context, addr string) (net.Conn, error)
	tls  *tls.Config // serverTLS of Options.TLS: accepted connections speak it; nil for none

	raft *subListener
	rpc  *subListener

	// raftOpen is closed once raft may take connections; until then the
	// mux hangs up on them. A node without raft state that joins a
	// cluster keeps it shut until the leader has accepted it: an empty
	// raft votes for any candidate, and a node that lost its folder
	// would so help elect a leader lacking committed entries.
	raftOpen     chan struct{}
	raftOpenOnce sync.Once

	done chan struct{}  // closed by Close
	wg   sync.WaitGroup // the accept loop and the header readers

	mu     sync.Mutex            // guards conns and closed
	conns  map[*muxConn]struct{} // open connections, accepted and dialed
	closed bool
}

// newGatedMux serves raft and the cluster RPC on ln, advertised as
// advertise, dialing others with dial (a TCP dial if nil); raft's
// connections are refused until openRaft. With tlsConfig (Options.TLS),
// it speaks mutual TLS on every connection.
func newGatedMux(ln net.Listener, advertise string, dial func(ctx context.Context, addr string) (net.Conn, error), tlsConfig *tls.Config) *mux {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	var srv *tls.Config
	if tlsConfig != nil {
		dial = tlsDialer(dial, tlsConfig)
		srv = serverTLS(tlsConfig)
	}
	m := &mux{
		ln:       ln,
		addr:     tcpAddr(advertise),
		dial:     dial,
		tls:      srv,
		done:     make(chan struct{}),
		conns:    map[*muxConn]struct{}{},
		raftOpen: make(chan struct{}),
	}
	m.raft = &subListener{m: m, ch: make(chan net.Conn), done: make(chan struct{})}
	m.rpc = &subListener{m: m, ch: make(chan net.Conn), done: make(chan struct{})}
	m.wg.Add(1)
	go m.accept()
	return m
}

// accept runs until the listener is closed.
func (m *mux) accept() {
	defer m.wg.Done()
	delay := time.Duration(0)
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure such as running out of file
			// descriptors: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-m.done:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if m.tls != nil {
			c = tls.Server(c, m.tls) // its handshake runs in route, under headerTimeout
		}
		mc := m.track(c)
		if mc == nil {
			return
		}
		m.wg.Add(1)
		go m.route(mc)
	}
}

// route reads a connection's first byte and hands it on.
func (m *mux) route(c *muxConn) {
	defer m.wg.Done()
	var b [1]byte
	// A TLS handshake writes too: the deadline covers both ways.
	_ = c.SetDeadline(time.Now().Add(headerTimeout))
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	var l *subListener
	switch b[0] {
	case protoRaft:
		if !m.raftIsOpen() {
			c.Close()
			return
		}
		l = m.raft
	case protoRPC:
		l = m.rpc
	default:
		c.Close()
		return
	}
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	case <-m.done:
		c.Close()
	}
}

// openRaft lets raft's connections through from now on.
func (m *mux) openRaft() { m.raftOpenOnce.Do(func() { close(m.raftOpen) }) }

// raftIsOpen reports whether openRaft has run.
func (m *mux) raftIsOpen() bool {
	select {
	case <-m.raftOpen:
		return true
	default:
		return false
	}
}

// track registers c, or closes it and returns nil if the mux is closed.
func (m *mux) track(c net.Conn) *muxConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.Close()
		return nil
	}
	mc := &muxConn{Conn: c, m: m}
	m.conns[mc] = struct{}{}
	return mc
}

// dialProto opens a connection to addr for the service proto.
func (m *mux) dialProto(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	select {
	case <-m.done:
		return nil, ErrClosed
	default:
	}
	c, err := m.dial(ctx, addr)
	if err != nil {
		return nil, &dialError{err}
	}
	mc := m.track(c)
	if mc == nil {
		return nil, ErrClosed
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = mc.SetWriteDeadline(dl)
	}
	if _, err := mc.Write([]byte{proto}); err != nil {
		err = withTLSAlert(mc, err)
		mc.Close()
		return nil, err
	}
	_ = mc.SetWriteDeadline(time.Time{})
	return mc, nil
}

// Close stops accepting, closes every connection and waits for the
// goroutines the mux started.
func (m *mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	err := m.ln.Close()
	conns := m.conns
	m.conns = nil
	m.mu.Unlock()
	for c := range conns {
		rawConn(c.Conn).Close() // no TLS close_notify: a peer that does not read would hold it 5 s
	}
	m.wg.Wait()
	return err
}

// muxConn is a connection the mux tracks until it is closed.
type muxConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *muxConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
		err = rawConn(c.Conn).Close()
	})
	return err
}

// subListener is the listener for one service on the mux.
type subListener struct {
	m    *mux
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, errMuxClosed
	case <-l.m.done:
		return nil, errMuxClosed
	}
}

// Close stops this service's Accept; the mux and its other service go on.
func (l *subListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the advertised address, which raft tells other nodes.
func (l *subListener) Addr() net.Addr { return l.m.addr }

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer struct{ *subListener }

// Dial opens a raft connection to address.
func (r raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.m.dialProto(ctx, string(address), protoRaft)
}

// tcpAddr is a net.Addr for an address given as text.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// notSentError is a request whose frame the connection did not take
// whole, or whose new connection the peer refused (a TLS alert, as for
// a certificate it does not take) before it answered anything: the
// peer cannot have read it, so nothing was done.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "cluster: request not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// dialError is a failure to connect: nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return "cluster: dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }
