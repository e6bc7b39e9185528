package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Remote operates a cluster from outside it, through the cluster RPC of
// one of its nodes; livekv cluster status|remove|transfer use it.
// Requests that only the leader serves are forwarded by the node.
type Remote struct {
	addr string
	c    *rpcClient
}

// NewRemote returns a Remote that talks to the node at addr (its raft
// address). Close it when done.
func NewRemote(addr string) *Remote { return remoteTLS(addr, nil) }

// NewRemoteTLS is NewRemote for a cluster whose nodes speak mutual TLS
// (Options.TLS): cfg holds the certificate the Remote shows and the CA
// it verifies the node with (RootCAs), as a node's Options.TLS does. A
// nil cfg is NewRemote. A cfg that would take whoever answers at addr
// for the node is ErrInvalidOptions: one without RootCAs (the system's
// roots, which sign certificates for anyone), or with InsecureSkipVerify
// and no VerifyConnection or VerifyPeerCertificate that does the
// verification it skips.
func NewRemoteTLS(addr string, cfg *tls.Config) (*Remote, error) {
	if cfg != nil {
		if err := verifiesNodes(cfg); err != nil {
			return nil, err
		}
	}
	return remoteTLS(addr, cfg), nil
}

// remoteTLS returns a Remote that talks to the node at addr over TCP,
// with TLS if cfg is not nil.
func remoteTLS(addr string, cfg *tls.Config) *Remote {
	var d net.Dialer
	dial := func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }
	if cfg != nil {
		dial = tlsDialer(dial, cfg.Clone())
	}
	return newRemote(addr, dial)
}

// newRemote returns a Remote that talks to the node at addr over the
// connections dial opens.
func newRemote(addr string, dial func(ctx context.Context, addr string) (net.Conn, error)) *Remote {
	return &Remote{addr: addr, c: &rpcClient{dial: func(ctx context.Context, a string) (net.Conn, error) {
		c, err := dial(ctx, a)
		if err != nil {
			return nil, &dialError{err}
		}
		if _, err := c.Write([]byte{protoRPC}); err != nil {
			err = withTLSAlert(c, err)
			c.Close()
			return nil, err
		}
		return c, nil
	}, maxFrame: minFrame, idle: map[string][]net.Conn{}}} // status and membership only
}

// Status returns the node's view of itself and the cluster.
func (r *Remote) Status(ctx context.Context) (Status, error) {
	resp, err := r.c.call(ctx, r.addr, &rpcRequest{Op: opStatus})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, fmt.Errorf("cluster: %s sent no status", r.addr)
	}
	return *resp.Status, nil
}

// RemoveServer removes the member id, as Node.RemoveServer does: a
// removal whose reply was lost on the network is sent again, and then a
// "no server" answer means that it is done.
func (r *Remote) RemoveServer(ctx context.Context, id string) error {
	req := &rpcRequest{Op: opRemove, ID: id}
	err := r.toLeader(ctx, req, false)
	if err == nil || retryable(err, false) || !retryable(err, true) {
		return err // done, or refused, or out of time
	}
	// Failed on the network once sent: the request may have reached
	// the leader and removed id.
	err = r.toLeader(ctx, req, true)
	if errors.Is(err, ErrInvalidOptions) {
		return nil
	}
	return err
}

// TransferLeadership hands leadership to id ("" for any voter), as
// Node.TransferLeadership does: sent again after a reply lost on the
// network only when it names id, since a transfer to any voter would
// move leadership twice.
func (r *Remote) TransferLeadership(ctx context.Context, id string) error {
	return r.toLeader(ctx, &rpcRequest{Op: opTransfer, ID: id}, id != "")
}

// toLeader sends req to the node, then to the leader it names. While the
// node knows no leader (ErrNoLeader, or a NotLeaderError naming none: an
// election under way) it is asked again after a short pause, until ctx
// ends; so is a request that failed on the network once sent, if it is
// idempotent.
func (r *Remote) toLeader(ctx context.Context, req *rpcRequest, idempotent bool) error {
	for {
		addr, err := followRedirects(r.addr, func(addr string) error {
			_, err := r.c.call(ctx, addr, req)
			return err
		})
		if redirects(err) {
			return fmt.Errorf("%w: too many redirects", ErrNoLeader)
		}
		// A leader named that does not answer has died, and the node that
		// named it has not seen so yet: an election is under way too.
		var dial *dialError
		stale := addr != r.addr && errors.As(err, &dial)
		// An idempotent request whose reply was lost is sent again.
		lost := idempotent && !retryable(err, false) && retryable(err, true)
		if !stale && !lost && !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotLeader) {
			return err // done, or refused
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoLeader, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// maxHops is how many nodes a request for the leader is sent to in turn,
// each naming the next as the leader, before it is given up.
const maxHops = 5

// followRedirects calls call with addr, then, while the answer is a
// NotLeaderError naming a leader, with that leader's address, maxHops
// calls at most. It returns the address called last and its answer,
// which still names a leader (redirects) if the hops ran out.
func followRedirects(addr string, call func(addr string) error) (string, error) {
	for hops := 1; ; hops++ {
		err := call(addr)
		var nl *NotLeaderError
		if hops == maxHops || !errors.As(err, &nl) || nl.Addr == "" {
			return addr, err
		}
		addr = nl.Addr
	}
}

// redirects reports whether err names a leader to ask.
func redirects(err error) bool {
	var nl *NotLeaderError
	return errors.As(err, &nl) && nl.Addr != ""
}

// Close closes the Remote's connections.
func (r *Remote) Close() { r.c.close() }
