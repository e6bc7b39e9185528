package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Mutual TLS between nodes (Options.TLS).
//
// Every connection, raft's and the RPC's, is TLS from its first byte:
// the mux wraps each accepted connection before it reads the byte that
// names the service, and each dialed one completes its handshake before
// it sends that byte. Both ends show a certificate and verify the
// other's, so a party without a certificate the cluster's CA signed can
// neither send raft messages nor call the RPC.

// verifiesNodes refuses (ErrInvalidOptions) a config, a node's or a
// Remote's, that would take whoever answers at a node's address for the
// node: one without RootCAs (nil is the system's roots, which sign
// certificates for anyone), or with InsecureSkipVerify and no
// VerifyConnection or VerifyPeerCertificate doing what it skips. Such a
// node would send raft's traffic to, and take votes and acknowledgements
// from, a stranger; such a Remote its removals.
func verifiesNodes(cfg *tls.Config) error {
	if cfg.RootCAs == nil {
		return fmt.Errorf("%w: TLS names no CA to verify the nodes dialed with (RootCAs)", ErrInvalidOptions)
	}
	if cfg.InsecureSkipVerify && cfg.VerifyConnection == nil && cfg.VerifyPeerCertificate == nil {
		return fmt.Errorf("%w: TLS skips verifying the nodes dialed (InsecureSkipVerify without VerifyConnection or VerifyPeerCertificate)", ErrInvalidOptions)
	}
	return nil
}

// serverTLS returns the config a node serves its port with: cfg, asking
// every connecting node for a certificate that ClientCAs (RootCAs when
// unset) verifies. The configs cfg's GetConfigForClient returns, which
// crypto/tls serves in its stead, ask for one too.
func serverTLS(cfg *tls.Config) *tls.Config {
	c := requireClientCert(cfg.Clone(), nil)
	if get := c.GetConfigForClient; get != nil {
		cas := c.ClientCAs
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := get(hello)
			if cc == nil || err != nil {
				return cc, err // nil serves c
			}
			return requireClientCert(cc.Clone(), cas), nil
		}
	}
	return c
}

// requireClientCert makes c ask for a client certificate that its
// ClientCAs verifies; unset, they are its RootCAs, or else cas.
func requireClientCert(c *tls.Config, cas *x509.CertPool) *tls.Config {
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	if c.ClientCAs == nil {
		c.ClientCAs = cas
	}
	return c
}

// tlsDialer wraps dial so that each connection it returns has completed a
// TLS handshake with the node at addr, verified against addr's host
// unless cfg names a server.
func tlsDialer(dial func(ctx context.Context, addr string) (net.Conn, error), cfg *tls.Config) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		cc := cfg
		if cfg.ServerName == "" {
			cc = cfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cc.ServerName = host
			}
		}
		tc := tls.Client(c, cc)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
}

// rawConn returns the socket's connection under c: under the mux's
// tracking and c's TLS, if any.
func rawConn(c net.Conn) net.Conn {
	if mc, ok := c.(*muxConn); ok {
		c = mc.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// withTLSAlert returns err, a failed write to c, or, if the peer of c sent a
// TLS alert before it hung up, that alert. With TLS 1.3 a client's
// handshake ends before the node has checked the client's certificate: a
// node that refuses it sends an alert and hangs up, and the client's
// next write may find the connection reset before a read has seen the
// alert, which says why.
func withTLSAlert(c net.Conn, err error) error {
	if mc, ok := c.(*muxConn); ok {
		c = mc.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok || !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	// The connection is reset: the read returns at once, with what the
	// peer sent before.
	_ = tc.SetReadDeadline(time.Now().Add(time.Second))
	_, rerr := tc.Read(make([]byte, 1))
	if tlsRefused(rerr) {
		return rerr
	}
	return err
}

// tlsRefused reports whether err is a TLS alert the peer sent (a
// certificate it refused, say): crypto/tls reports one as a
// *net.OpError whose Op is "remote error". The peer closing the
// connection (close_notify) is io.EOF instead.
func tlsRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}
