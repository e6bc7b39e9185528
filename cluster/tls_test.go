package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// config returns a node's TLS config: a certificate this CA signed for
// 127.0.0.1, for server and client authentication, and the CA as root.
func (ca *testCA) config(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, RootCAs: ca.pool}
}

// openTLSNode opens a node on ln with cfg as its Options.TLS.
func openTLSNode(ctx context.Context, dir string, id string, ln net.Listener, peers []Peer, join []string, cfg *tls.Config) (*Node, error) {
	return OpenContext(ctx, filepath.Join(dir, id), &Options{NodeID: id, RaftAddr: ln.Addr().String(), Listener: ln,
		Peers: peers, Join: join, Profile: ProfileLAN, WriteTimeout: 5 * time.Second, TLS: cfg})
}

// TestTLS_NodesSpeakMutualTLS: a cluster whose nodes have Options.TLS
// elects, replicates, forwards a follower's write and serves its reads
// and a join over TLS, and a Remote with the cluster's certificates
// operates it; a Remote without TLS, or with a certificate another CA
// signed, gets nothing, nor does a node without TLS that asks to join,
// nor a connection that sends raft's byte in the clear.
func TestTLS_NodesSpeakMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	var lns []net.Listener
	var peers []Peer
	for i := range 4 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: ln.Addr().String()})
	}
	founders := peers[:3]
	nodes := make([]*Node, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			n, err := openTLSNode(context.Background(), dir, peers[i].ID, lns[i], founders, nil, ca.config(t))
			nodes[i] = n
			errs <- err
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	defer func() {
		for _, n := range nodes {
			require.NoError(t, n.Close())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leaderID, _, err := nodes[0].WaitLeader(ctx)
	require.NoError(t, err)
	follower := nodes[0]
	for i, p := range founders {
		if p.ID != leaderID {
			follower = nodes[i]
		}
	}
	_, err = follower.Set("k", "v", nil) // forwarded to the leader over the RPC
	require.NoError(t, err)
	it, err := follower.Get("k") // a linearizable read: the read index over the RPC
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)

	// A fourth node joins over TLS and catches up.
	n3, err := openTLSNode(ctx, dir, peers[3].ID, lns[3], nil, []string{follower.opts.RaftAddr}, ca.config(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, n3.Close()) }()
	it, err = n3.Get("k")
	require.NoError(t, err)
	require.Equal(t, "v", it.Value)

	r, err := NewRemoteTLS(follower.opts.RaftAddr, ca.config(t))
	require.NoError(t, err)
	st, err := r.Status(ctx)
	r.Close()
	require.NoError(t, err)
	require.Len(t, st.Servers, 4)

	// What has no certificate of the cluster's CA gets nothing.
	short := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 3*time.Second)
	}
	remoteTLS := func(cfg *tls.Config) *Remote {
		r, err := NewRemoteTLS(follower.opts.RaftAddr, cfg)
		require.NoError(t, err)
		return r
	}
	for name, r := range map[string]*Remote{
		"no TLS":           NewRemote(follower.opts.RaftAddr),
		"another CA":       remoteTLS(newTestCA(t).config(t)),
		"no certificate":   remoteTLS(&tls.Config{RootCAs: ca.pool}),
		"another CA shown": remoteTLS(&tls.Config{Certificates: newTestCA(t).config(t).Certificates, RootCAs: ca.pool}),
	} {
		c, cancel := short()
		_, err := r.Status(c)
		cancel()
		r.Close()
		require.Error(t, err, name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c, cancel := short()
	_, err = openTLSNode(c, dir, "plain", ln, nil, []string{follower.opts.RaftAddr}, nil)
	cancel()
	require.Error(t, err, "a node without TLS joined")
	require.Len(t, follower.Status().Servers, 4)

	// raft's byte in the clear is no TLS handshake: the node hangs up.
	conn, err := net.Dial("tcp", follower.opts.RaftAddr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte{protoRaft, 0, 0, 0, 0})
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(headerTimeout+5*time.Second)))
	b := make([]byte, 512)
	for err == nil {
		_, err = conn.Read(b) // a TLS alert, at most, then the end
	}
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the node kept the connection open: %v", err)
}

// TestTLS_OptionsRefused: a TLS config that shows no certificate, or
// that would take whoever answers at a node's address for the node (no
// RootCAs: the system's roots, which sign certificates for anyone, with
// or without ClientCAs; InsecureSkipVerify with no verification of its
// own) is refused before anything opens; one that verifies the nodes
// itself opens.
func TestTLS_OptionsRefused(t *testing.T) {
	open := func(cfg *tls.Config) error {
		n, err := Open(t.TempDir(), &Options{NodeID: "a", RaftAddr: "127.0.0.1:0", Peers: []Peer{{ID: "a", Addr: "127.0.0.1:0"}},
			TLS: cfg, Engine: &engine.Options{}})
		if err == nil {
			require.NoError(t, n.Close())
		}
		return err
	}
	ca := newTestCA(t)
	for name, change := range map[string]func(*tls.Config){
		"no certificate":     func(c *tls.Config) { c.Certificates = nil },
		"no CA":              func(c *tls.Config) { c.RootCAs = nil },
		"ClientCAs alone":    func(c *tls.Config) { c.RootCAs, c.ClientCAs = nil, ca.pool },
		"InsecureSkipVerify": func(c *tls.Config) { c.InsecureSkipVerify = true },
	} {
		cfg := ca.config(t)
		change(cfg)
		require.ErrorIs(t, open(cfg), ErrInvalidOptions, name)
	}
	cfg := ca.config(t)
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(tls.ConnectionState) error { return nil }
	require.NoError(t, open(cfg), "a config that verifies the nodes itself")
}

// TestTLS_IdleConnectionIsNotTakenForClosed: the RPC pool looks at the
// socket under an idle connection's TLS: after a request and its answer
// (which took in what the server sent after its handshake) it holds
// nothing to read, and once the node closes its end it counts as
// closed, and is not sent a request that would find no answer.
func TestTLS_IdleConnectionIsNotTakenForClosed(t *testing.T) {
	ca := newTestCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	served := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(served)
			return
		}
		tc := tls.Server(c, serverTLS(ca.config(t)))
		b := make([]byte, 1)
		if _, err := tc.Read(b); err == nil {
			_, _ = tc.Write(b) // an answer, as the RPC gives
		}
		served <- tc
	}()
	var d net.Dialer
	dial := tlsDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }, ca.config(t))
	c, err := dial(context.Background(), ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte{protoRPC})
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.NoError(t, err)
	srv := <-served
	require.NotNil(t, srv)
	time.Sleep(50 * time.Millisecond) // what the server might still send arrives
	require.False(t, peerClosed(c), "an idle TLS connection counts as closed")
	require.NoError(t, rawConn(srv).Close())
	require.Eventually(t, func() bool { return peerClosed(c) }, 5*time.Second, 10*time.Millisecond)
}

// TestTLS_RemoteVerifiesTheNode: a Remote whose TLS config would take
// whoever answers at the node's address for the node (no RootCAs: the
// system's roots; InsecureSkipVerify with no verification of its own)
// is refused, as such a node's Options.TLS is, and sends nothing; one
// that verifies the node itself is not.
func TestTLS_RemoteVerifiesTheNode(t *testing.T) {
	impostor, err := tls.Listen("tcp", "127.0.0.1:0", newTestCA(t).config(t))
	require.NoError(t, err)
	done := make(chan struct{})
	defer func() { impostor.Close(); <-done }()
	go func() { // hands its certificate to whoever dials
		defer close(done)
		for {
			c, err := impostor.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	ca := newTestCA(t)
	noCA := ca.config(t)
	noCA.RootCAs = nil
	onlyClientCAs := ca.config(t)
	onlyClientCAs.ClientCAs, onlyClientCAs.RootCAs = ca.pool, nil
	skip := ca.config(t)
	skip.InsecureSkipVerify = true
	for name, cfg := range map[string]*tls.Config{"no RootCAs": noCA, "only ClientCAs": onlyClientCAs, "InsecureSkipVerify": skip} {
		r, err := NewRemoteTLS(impostor.Addr().String(), cfg)
		require.ErrorIs(t, err, ErrInvalidOptions, name)
		require.Nil(t, r, name)
	}

	skip.VerifyConnection = func(tls.ConnectionState) error { return errors.New("not the node") }
	r, err := NewRemoteTLS(impostor.Addr().String(), skip)
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = r.Status(ctx)
	require.ErrorContains(t, err, "not the node")
}

// TestTLS_ConfigForClientAsksForACertificateToo: a config that serves
// each connection with the config its GetConfigForClient returns (to
// reload certificates, say) still asks every connecting party for a
// certificate the CA signed: a Remote with none gets nothing.
func TestTLS_ConfigForClientAsksForACertificateToo(t *testing.T) {
	ca := newTestCA(t)
	cfg := ca.config(t)
	served := cfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return served, nil }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n, err := openTLSNode(context.Background(), t.TempDir(), "a", ln, []Peer{{ID: "a", Addr: ln.Addr().String()}}, nil, cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, n.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := NewRemoteTLS(ln.Addr().String(), ca.config(t))
	require.NoError(t, err)
	_, err = r.Status(ctx)
	r.Close()
	require.NoError(t, err)

	r, err = NewRemoteTLS(ln.Addr().String(), &tls.Config{RootCAs: ca.pool})
	require.NoError(t, err)
	_, err = r.Status(ctx)
	r.Close()
	require.Error(t, err, "a Remote without a certificate was answered")
}

// TestTLS_LeaderLostUnderWrites: in a cluster over mutual TLS, writers
// write through every node while the leader is closed; the others elect
// a new one over TLS, writes go on being acknowledged, and each write
// acknowledged is on both survivors.
func TestTLS_LeaderLostUnderWrites(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	var lns []net.Listener
	var peers []Peer
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i), Addr: ln.Addr().String()})
	}
	nodes := make([]*Node, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			n, err := openTLSNode(context.Background(), dir, peers[i].ID, lns[i], peers, nil, ca.config(t))
			nodes[i] = n
			errs <- err
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	closed := make([]bool, 3)
	defer func() {
		for i, n := range nodes {
			if !closed[i] {
				require.NoError(t, n.Close())
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaderID, _, err := nodes[0].WaitLeader(ctx)
	require.NoError(t, err)
	leader := 0
	for i, p := range peers {
		if p.ID == leaderID {
			leader = i
		}
	}

	w := newWriteLog()
	acked := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked)
	}
	stop := make(chan struct{})
	var wgs []*sync.WaitGroup
	for i := range 3 {
		wgs = append(wgs, writers(2, w, func() *Node { return nodes[i] }, stop))
	}
	require.Eventually(t, func() bool { return acked() >= 50 }, 20*time.Second, 10*time.Millisecond)
	before := acked()
	require.NoError(t, nodes[leader].Close()) // its writers fail from now on
	closed[leader] = true
	require.Eventually(t, func() bool { return acked() >= before+50 }, 20*time.Second, 10*time.Millisecond,
		"no write acknowledged after the leader was lost")
	close(stop)
	for _, wg := range wgs {
		wg.Wait()
	}
	newLeader, _, err := nodes[(leader+1)%3].WaitLeader(ctx)
	require.NoError(t, err)
	require.NotEqual(t, leaderID, newLeader)

	w.mu.Lock()
	defer w.mu.Unlock()
	for i, n := range nodes {
		if closed[i] {
			continue
		}
		for k, rev := range w.acked {
			it, err := n.Get(k) // linearizable: what the leader committed
			require.NoError(t, err, "node %d lost acknowledged %s@%d", i, k, rev)
			require.Equal(t, rev, it.Revision)
		}
	}
	t.Logf("acknowledged %d (%d before the leader was lost), refused %d, uncertain %d", len(w.acked), before, len(w.refused), len(w.unknown))
}

// TestTLS_JoinToANodeItCannotVerifyFails: a node asked to join through
// an address whose node shows a certificate it does not verify (one
// that does not name the address's host) is told so at once, rather
// than asking again until its context ends: no answer there can come.
func TestTLS_JoinToANodeItCannotVerifyFails(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a, err := openTLSNode(context.Background(), dir, "a", ln, []Peer{{ID: "a", Addr: ln.Addr().String()}}, nil, ca.config(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, a.Close()) }()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)

	lb, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := openTLSNode(ctx, dir, "b", lb, nil, []string{"localhost:" + port}, ca.config(t)) // its certificate names 127.0.0.1
	if err == nil {
		b.Close()
	}
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the join was asked again until its time ran out")
}

// TestTLS_WriteToALeaderThatRefusesTheCertificateIsNotSent: under TLS
// 1.3 a node learns that the leader refused its certificate only as it
// reads the answer to a forwarded write: the write, which the leader
// never read, fails as not done, with the leader's alert, rather than
// uncertain.
func TestTLS_WriteToALeaderThatRefusesTheCertificateIsNotSent(t *testing.T) {
	caA, caB := newTestCA(t), newTestCA(t)
	both := x509.NewCertPool()
	both.AddCert(caA.cert)
	both.AddCert(caB.cert)
	cfgA := caA.config(t) // a takes only caA's certificates
	cfgA.RootCAs, cfgA.ClientCAs = both, caA.pool
	cfgB := caB.config(t)
	cfgB.RootCAs = both
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	peers := []Peer{{ID: "a", Addr: lnA.Addr().String()}, {ID: "b", Addr: lnB.Addr().String()}}
	open := func(id string, ln net.Listener, cfg *tls.Config) *Node {
		n, err := Open(filepath.Join(t.TempDir(), id), &Options{NodeID: id, RaftAddr: ln.Addr().String(), Listener: ln,
			Peers: peers, Profile: ProfileLAN, WriteTimeout: time.Second, TLS: cfg})
		require.NoError(t, err)
		return n
	}
	a := open("a", lnA, cfgA)
	defer func() { require.NoError(t, a.Close()) }()
	b := open("b", lnB, cfgB)
	defer func() { require.NoError(t, b.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leader, _, err := b.WaitLeader(ctx) // b's requests for a's vote cannot reach it
	require.NoError(t, err)
	require.Equal(t, "a", leader)

	_, err = b.Set("k", "v", nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrUncertain)
	_, err = a.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)

	// Each request is not sent, for the alert's reason.
	_, err = b.rpc.call(ctx, lnA.Addr().String(), &rpcRequest{Op: opStatus})
	var unsent *notSentError
	require.ErrorAs(t, err, &unsent)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "remote error", op.Op, "%v", err)
}

// TestTLS_RejoinToANodeItCannotVerifyFails: a node with raft state that
// asks the cluster at an address whose node shows a certificate it does
// not verify whether it is a member (joinIfOut; here it comes back at a
// new address) is told so at once, as a fresh node is.
func TestTLS_RejoinToANodeItCannotVerifyFails(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a, err := openTLSNode(context.Background(), dir, "a", ln, []Peer{{ID: "a", Addr: ln.Addr().String()}}, nil, ca.config(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, a.Close()) }()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)

	lb, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b, err := openTLSNode(context.Background(), dir, "b", lb, []Peer{{ID: "b", Addr: lb.Addr().String()}}, nil, ca.config(t))
	require.NoError(t, err)
	require.NoError(t, b.Close())

	lb, err = net.Listen("tcp", "127.0.0.1:0") // b's state lists it at its old address
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err = openTLSNode(ctx, dir, "b", lb, nil, []string{"localhost:" + port}, ca.config(t)) // a's certificate names 127.0.0.1
	if err == nil {
		b.Close()
	}
	var verr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verr)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the cluster was asked again until its time ran out")
}

// TestTLS_RefusedCertificateIsNamedAfterTheHandshake: with TLS 1.3 a
// client's handshake ends before the node has checked its certificate;
// a node that refuses it sends an alert and hangs up. A Remote whose
// request is written only once the node has hung up (a loaded machine)
// fails with the node's alert, which names the certificate, not with
// the broken pipe its write found.
func TestTLS_RefusedCertificateIsNamedAfterTheHandshake(t *testing.T) {
	ca := newTestCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	refused := make(chan struct{})
	go func() {
		defer close(refused)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = tls.Server(c, serverTLS(ca.config(t))).Handshake() // sends the alert
	}()
	var armed atomic.Bool
	var d net.Dialer
	raw := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &lateWriter{Conn: c, armed: &armed, wait: refused}, nil
	}
	other := newTestCA(t).config(t)
	other.RootCAs = ca.pool // it trusts the node; the node does not trust it
	handshake := tlsDialer(raw, other)
	r := newRemote(ln.Addr().String(), func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := handshake(ctx, addr)
		armed.Store(true) // what is written from now on waits for the node to hang up
		return c, err
	})
	defer r.Close()
	_, err = r.Status(ctxT(t))
	var op *net.OpError
	require.True(t, errors.As(err, &op) && op.Op == "remote error", "%v", err)
	require.ErrorContains(t, err, "tls: unknown certificate authority")
}

// lateWriter is a connection whose writes, once armed, wait for wait to
// close, and then for the peer's answer to what they wrote.
type lateWriter struct {
	net.Conn
	armed *atomic.Bool
	wait  chan struct{}
}

func (c *lateWriter) Write(b []byte) (int, error) {
	if !c.armed.Load() {
		return c.Conn.Write(b)
	}
	<-c.wait
	n, err := c.Conn.Write(b)
	time.Sleep(50 * time.Millisecond) // the reset of a closed peer arrives
	return n, err
}
