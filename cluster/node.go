package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// Node is one member of a livekv cluster.
type Node struct {
	opts Options
	sm   stateMachine
	mux  *mux

	// The database, for a node that Open made (nil in tests of the
	// raft machinery alone).
	db  *engine.DB
	ctl *engine.Replica
	rep *replicator
	fsm *fsm

	rn  *raftNode
	rpc *rpcClient
	srv *rpcServer

	// serving is set once Open has started raft and the node's
	// goroutines: until then handle answers every request that the node
	// knows no leader.
	serving atomic.Bool

	// readyTerm is the term in which this node, leading, applied its
	// barrier, so that its commit and applied indexes cover everything
	// earlier leaders committed; 0 if none. See isReady.
	readyTerm atomic.Uint64

	// incarnation names this opening of the node, at random: a join
	// request carries it, and the leader makes a voter of no node that
	// answers at the address with another (opened again since it asked).
	incarnation string

	// served is set once this node has applied the commit index it first
	// learned from a leader: before that it serves no read at all, stale
	// ones included, since its state may be far behind. caughtUp is
	// closed when it is set.
	served   atomic.Bool
	caughtUp chan struct{}

	reads       coalescer[readIndex] // coalesced read-index rounds, on the leader
	remoteReads coalescer[readIndex] // coalesced read-index requests to the leader, on a follower

	noLeaderSince atomic.Int64 // unix ns since when no leader is known; 0 while one is

	// Lease reads (lease.go).
	opened   time.Time                  // when Open began: the origin of now
	lease    atomic.Pointer[leaseGrant] // the latest lease, if any
	noLease  atomic.Uint64              // a term in which this node started a transfer: no lease then
	voters   atomic.Uint64              // counts changes of the voters, before and after each
	renewing atomic.Bool                // a background renewal runs

	subMu sync.Mutex // guards subs
	subs  map[*engine.Subscription]struct{}

	// gate is held for reading while a raft future is pending: raft may
	// drop futures at shutdown (it queues VerifyLeader and
	// LeadershipTransfer in buffered channels that nobody drains then,
	// and committed entries wait in a buffered channel for the FSM),
	// and their Error would never return. Close takes it for writing
	// before it shuts raft down; while raft runs, they always resolve,
	// if only with leadership lost.
	gate sync.RWMutex

	ctx       context.Context // ends when Close starts
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the leadership loop
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by Close
}

// Status describes a node and the cluster as it sees it.
type Status struct {
	ID         string   `json:"id"`
	Addr       string   `json:"addr"`
	State      string   `json:"state"` // Leader, Follower, Candidate or Shutdown
	LeaderID   string   `json:"leader_id,omitempty"`
	LeaderAddr string   `json:"leader_addr,omitempty"`
	Term       uint64   `json:"term"`
	LastIndex  uint64   `json:"last_index"`
	Commit     uint64   `json:"commit_index"`
	Applied    uint64   `json:"applied_index"`
	Revision   int64    `json:"revision"`
	Servers    []Server `json:"servers,omitempty"`
}

// Server is one member of the cluster's configuration.
type Server struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// joinTimeout bounds Open's joining of a cluster through Options.Join, and
// the leader's wait for a newcomer to catch up before it may vote.
const joinTimeout = 2 * time.Minute

// catchUpEntries is how close to the leader's last index a newcomer must
// be before the leader makes it a voter.
const catchUpEntries = 1000

// openNode opens a node whose state machine is fsm.
// started, if not nil, runs once raft runs, before the node serves.
// Once ctx ends, the node stops as if closing and openNode closes it
// (see OpenContext).
func openNode(ctx context.Context, dir string, opts *Options, fsm stateMachine, started func(*Node)) (_ *Node, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.RaftAddr); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	n := &Node{opts: o, sm: fsm, done: make(chan struct{}), caughtUp: make(chan struct{}), subs: map[*engine.Subscription]struct{}{}, opened: time.Now(),
		incarnation: rand.Text()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// ctx ending cuts every wait of the opening short as Close would:
	// raft's start, the join.
	stop := context.AfterFunc(ctx, n.cancel)
	defer stop()
	n.mux = newGatedMux(ln, o.RaftAddr, o.Dial, o.TLS) // startRaft opens it, unless the node is fresh
	n.rpc = newRPCClient(n.mux, frameLimit(o.Engine))
	// Served from the start, so that a node that asks one starting hears
	// at once that it knows no leader yet (handle), rather than wait for
	// no answer.
	n.srv = startRPCServer(n.mux.rpc, n.handle, frameLimit(o.Engine))
	if n.rn, err = startRaft(dir, &o, n.mux, fsm, n.ctx.Done(), true); err != nil {
		n.cancel()
		n.srv.close() // startRaft closed the mux
		return nil, err
	}
	if started != nil {
		started(n)
	}
	if g := n.rn.gate; g != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.holdGate(g, o.Peers)
		}()
	}
	n.wg.Add(2)
	go n.leadership()
	go n.catchUp()
	if n.db != nil {
		n.wg.Add(1)
		go n.watchLeader()
	}
	n.serving.Store(true)
	if !n.rn.bootstrapped && len(o.Join) > 0 {
		ctx, cancel := context.WithTimeout(ctx, joinTimeout)
		err = n.joinIfOut(ctx, o.Join)
		cancel()
		if err != nil {
			n.Close()
			return nil, err
		}
	}
	if !stop() {
		n.Close() // ctx ended: the node stopped as it opened
		return nil, ctx.Err()
	}
	return n, nil
}

// joinIfOut runs Join for a node opened with Options.Join unless it is a
// voter of the cluster at its raft address. A node with raft state joins
// too when it is missing there (removed), a non-voter (a join cut short
// while it caught up) or listed at another address (restarted on a new
// one): the leader adds it, moves its entry, or makes it a voter once it
// has caught up. The configuration its raft holds says so, and when it
// lists the node a voter at its address, the cluster's leader is asked
// once, through addrs (askCluster): a node removed while it was down or
// cut off never heard of its removal (removedBy). If no leader answers,
// the node opens as the member it holds it is (a whole cluster restarting
// at once). A node with state must share a member (the same ID at the
// same address) with the configuration the cluster reports, else its
// folder holds another cluster's state and it is refused, ErrJoinRefused:
// checked first, since raft indexes of two clusters do not compare.
func (n *Node) joinIfOut(ctx context.Context, addrs []string) error {
	f := n.rn.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	stored := f.Configuration().Servers
	if len(stored) == 0 {
		return n.Join(ctx, addrs...) // fresh
	}
	voter := slices.ContainsFunc(stored, func(s raft.Server) bool {
		return string(s.ID) == n.opts.NodeID && string(s.Address) == n.opts.RaftAddr && s.Suffrage == raft.Voter
	})
	var s *Status
	var err error
	if voter {
		if s, err = n.askCluster(ctx, addrs, memberCheckTimeout, true); err != nil {
			return nil // no leader answers to say otherwise: a member, as it holds
		}
	} else if s, err = n.clusterStatus(ctx, addrs); err != nil {
		return err
	}
	if !slices.ContainsFunc(stored, func(sv raft.Server) bool { return memberAt(s.Servers, string(sv.ID), string(sv.Address)) }) {
		return fmt.Errorf("%w: the folder holds another cluster's state: empty it "+
			"(no member of the configuration it holds is in the cluster at %v)", ErrJoinRefused, addrs)
	}
	if voter && !n.removedBy(s) {
		return nil // a member
	}
	return n.Join(ctx, addrs...)
}

// memberAt reports whether servers lists id at addr, voter or not.
func memberAt(servers []Server, id, addr string) bool {
	return slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id && s.Addr == addr })
}

// verifyTally counts the nodes a node asked (askCluster, askJoin), and
// those of them whose certificates it did not verify (Options.TLS).
type verifyTally struct{ asked, unverified int }

// note counts a node asked, that answered err.
func (v *verifyTally) note(err error) {
	v.asked++
	var verr *tls.CertificateVerificationError
	if errors.As(err, &verr) {
		v.unverified++
	}
}

// none reports whether nodes were asked and none could be verified.
func (v *verifyTally) none() bool { return v.asked > 0 && v.unverified == v.asked }

// errUnverified is askCluster's and askJoin's failure when every node
// they asked showed a certificate this node does not verify
// (Options.TLS): a certificate
// that does not name the host dialed, or that another CA signed, is not
// mended by asking again.
var errUnverified = errors.New("cluster: the nodes asked show certificates this node does not verify")

// memberCheckTimeout bounds each question a node asks about its own
// membership (askCluster: one to a member, one more to the leader it
// names), asked when what it holds may be out of date: a node with state
// opened with Options.Join, and Leave without a leader.
const memberCheckTimeout = time.Second

// removedBy reports whether s, a leader's status, shows this node
// removed: its configuration leaves the node out. (askCluster has the
// leader confirm its leadership before it answers: a deposed one, which
// never heard of the node's joining, would say so too, and
// hashicorp/raft v1.7.2 gives no configuration's index to tell its older
// one by.)
func (n *Node) removedBy(s *Status) bool {
	return !slices.ContainsFunc(s.Servers, func(sv Server) bool { return sv.ID == n.opts.NodeID })
}

// clusterStatus returns the status of the cluster at addrs, asked in
// turn by askCluster until one answers or ctx ends, or at once when
// every node there shows a certificate this node does not verify, as
// Join does.
func (n *Node) clusterStatus(ctx context.Context, addrs []string) (*Status, error) {
	for {
		s, err := n.askCluster(ctx, addrs, addressCheckTimeout, false)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, errUnverified) {
			return nil, fmt.Errorf("cluster: join %v: %w", addrs, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: join %v: %w", addrs, errors.Join(err, ctx.Err()))
		case <-n.done:
			return nil, ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// askCluster asks the nodes at addrs in turn, each for at most timeout,
// for the status of the cluster, and returns the first answer: the
// leader's, or, unless leaderOnly, that of the node that answers if the
// leader does not (a member that is behind may hold an older
// configuration). With leaderOnly, a leader confirms its leadership
// before it answers (rpcRequest.Confirm). This node, if among addrs, is
// skipped. It fails if none answers, with errUnverified if every node
// asked showed a certificate this node does not verify.
func (n *Node) askCluster(ctx context.Context, addrs []string, timeout time.Duration, leaderOnly bool) (*Status, error) {
	status := func(addr string) (*Status, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req := &rpcRequest{Op: opStatus, Confirm: leaderOnly}
		if dl, ok := ctx.Deadline(); ok {
			req.Left = max(time.Until(dl), 1) // a leader not ready yet waits no longer
		}
		resp, err := n.rpc.call(ctx, addr, req)
		if err == nil && (resp.Status == nil || resp.Status.ID == n.opts.NodeID || len(resp.Status.Servers) == 0) {
			err = fmt.Errorf("cluster: %s gave no configuration", addr)
		}
		if err != nil {
			return nil, err
		}
		return resp.Status, nil
	}
	last := errors.New("cluster: no other node to ask")
	var tally verifyTally
	for _, a := range addrs {
		if a == n.opts.RaftAddr {
			continue
		}
		s, err := status(a)
		tally.note(err)
		if err != nil {
			last = err
			continue
		}
		if s.LeaderAddr != "" && s.LeaderAddr != a && s.LeaderAddr != n.opts.RaftAddr {
			if ls, err := status(s.LeaderAddr); err == nil {
				s = ls
			}
		}
		if leaderOnly && s.State != raft.Leader.String() {
			last = fmt.Errorf("cluster: no leader answers through %s", a)
			continue
		}
		return s, nil
	}
	if tally.none() {
		return nil, fmt.Errorf("%w: %w", errUnverified, last)
	}
	return nil, last
}

// Close stops the node: raft, every connection, the stores. It waits for
// every goroutine the node started. A node whose disk is full while raft
// waits to save a new term still closes, with an error saying so (see
// docs/cluster.md, "Full disk").
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.cancel()
		n.gate.Lock()
		//lint:ignore SA2001 taking the lock waits out the pending futures; nothing to do under it
		n.gate.Unlock()
		if n.rep != nil {
			n.rep.close() // waits for its proposals, while raft still runs
		}
		n.rpc.close()
		n.closeErr = n.rn.close() // closes the mux, and so the RPC connections
		n.srv.close()
		n.wg.Wait()
		if n.db != nil {
			n.closeErr = errors.Join(n.closeErr, n.db.Close())
		}
	})
	return n.closeErr
}

func (n *Node) closed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// ID is this node's ID.
func (n *Node) ID() string { return n.opts.NodeID }

// Addr is this node's raft address.
func (n *Node) Addr() string { return n.opts.RaftAddr }

// Leader returns the ID and address of the leader this node knows of,
// empty when it knows none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.rn.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.rn.raft.State() == raft.Leader }

// WaitLeader waits until this node knows a leader and returns it.
func (n *Node) WaitLeader(ctx context.Context) (id, addr string, err error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if id, addr = n.Leader(); addr != "" {
			return id, addr, nil
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-n.done:
			return "", "", ErrClosed
		case <-t.C:
		}
	}
}

// Status returns this node's view of itself and the cluster.
func (n *Node) Status() Status {
	r := n.rn.raft
	s := Status{
		ID:        n.opts.NodeID,
		Addr:      n.opts.RaftAddr,
		State:     r.State().String(),
		Term:      r.CurrentTerm(),
		LastIndex: r.LastIndex(),
		Commit:    r.CommitIndex(),
		Applied:   n.sm.tracker().index(),
	}
	s.LeaderID, s.LeaderAddr = n.Leader()
	if n.db != nil {
		s.Revision = n.db.Revision()
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, sv := range f.Configuration().Servers {
			s.Servers = append(s.Servers, Server{ID: string(sv.ID), Addr: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
		}
	}
	return s
}

// notLeader is the error for a request only the leader can serve.
func (n *Node) notLeader() error {
	if n.closed() {
		return ErrClosed
	}
	id, addr := n.Leader()
	return &NotLeaderError{ID: id, Addr: addr}
}

// toLeader sends req to the leader, following redirects, until ctx ends.
// A node without a known leader waits for one. A request that may have
// reached the leader is sent again only if it is idempotent. A leader
// that answers that it is closing is asked nothing more while this node
// knows it as the leader in the same term: the request waits for the
// next one.
func (n *Node) toLeader(ctx context.Context, req *rpcRequest, idempotent bool) (*rpcResponse, error) {
	var last error
	var gone string     // the address of a leader closing
	var goneTerm uint64 // this node's term when it answered so
	for {
		_, addr, err := n.WaitLeader(ctx)
		if err != nil {
			return nil, err
		}
		if addr != gone || n.rn.raft.CurrentTerm() != goneTerm {
			if dl, ok := ctx.Deadline(); ok {
				req.Left = max(time.Until(dl), 1) // 0 would say nothing
			}
			resp, err := n.rpc.call(ctx, addr, req)
			if closing(err) {
				// It refused the request before doing anything;
				// this node is not closed.
				gone, goneTerm = addr, n.rn.raft.CurrentTerm()
				err = fmt.Errorf("%w: the leader at %s is closing", ErrNoLeader, addr)
			}
			if err == nil || !retryable(err, idempotent) {
				return resp, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, errors.Join(last, ctx.Err()))
		case <-n.done:
			return nil, ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// closing reports whether err is another node's answer that it is
// closing (ErrClosed), which it gives before doing anything; a write cut
// short by its closing is ErrUncertain instead.
func closing(err error) bool {
	var re *remoteError
	return errors.As(err, &re) && re.sentinel == ErrClosed
}

// retryable reports whether a request that failed with err may be sent
// again: it was refused before doing anything, or never arrived, or it is
// idempotent and failed on the network.
func retryable(err error, idempotent bool) bool {
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) {
		return true
	}
	var dial *dialError
	var unsent *notSentError
	if errors.As(err, &dial) || errors.As(err, &unsent) {
		return true
	}
	if !idempotent {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne) && !ne.Timeout()
}

// Join asks the cluster at one of addrs (tried in turn, redirects
// followed) to add this node, first as a non-voter and, once it has
// caught up, as a voter. A join the leader refuses (ErrInvalidOptions:
// this node's address is a live member's, or this node is a voter that
// lost its raft state) is not asked again, nor are addrs whose nodes all
// show certificates this node does not verify (Options.TLS).
//
// A fresh node (no raft state when it opened) asks in two steps: to be
// added as a non-voter, saying it is fresh, and then, once the leader has
// done so and its raft takes connections, to be made a voter. Until the
// first is answered its raft takes part in nothing, votes above all: a
// member whose folder was lost and that comes back under its ID would
// otherwise vote, with an empty log, for a candidate lacking entries it
// had helped commit, and the leader refuses it.
func (n *Node) Join(ctx context.Context, addrs ...string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%w: no address to join", ErrInvalidOptions)
	}
	req := &rpcRequest{Op: opJoin, ID: n.opts.NodeID, Addr: n.opts.RaftAddr, Incarnation: n.incarnation}
	if !n.mux.raftIsOpen() {
		fresh := *req
		fresh.Fresh = true
		if err := n.askJoin(ctx, addrs, &fresh); err != nil {
			return err
		}
		n.mux.openRaft()
	}
	return n.askJoin(ctx, addrs, req)
}

// askJoin sends the join request req to one of addrs, as Join says.
func (n *Node) askJoin(ctx context.Context, addrs []string, req *rpcRequest) error {
	var last error
	for {
		var tally verifyTally
		for _, a := range addrs {
			if a == "" {
				continue
			}
			_, err := followRedirects(a, func(addr string) error {
				if dl, ok := ctx.Deadline(); ok {
					req.Left = max(time.Until(dl), 1) // the leader waits no longer
				}
				_, err := n.rpc.call(ctx, addr, req)
				return err
			})
			if err == nil {
				return nil
			}
			if errors.Is(err, ErrInvalidOptions) {
				return fmt.Errorf("cluster: join: %w", err) // refused: asking again changes nothing
			}
			tally.note(err)
			last = err
		}
		if tally.none() {
			// No node that answers can be trusted (Options.TLS): a
			// certificate that does not name the host dialed, or that
			// another CA signed, is not mended by asking again.
			return fmt.Errorf("cluster: join %v: %w: %w", addrs, errUnverified, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: join %v: %w", addrs, errors.Join(last, ctx.Err()))
		case <-n.done:
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addressCheckTimeout bounds the leader's question to the node at a
// member's address, before it gives that address to a newcomer.
const addressCheckTimeout = 5 * time.Second

// addServer makes id at addr a member: a non-voter first, a voter once it
// is within catchUpEntries of the leader's log. It runs on the leader.
// For a fresh node (no raft state) it stops once the node is a non-voter,
// and refuses an id that is a voter: a node that lost its state must not
// vote as the one that had it, whose votes and log entries made commits.
// An entry of another ID at addr is removed first only if no other node
// answers there (checkAddress): a newcomer given a live member's address
// (a copied command line) is refused, ErrInvalidOptions, instead of
// taking that member out. With incarnation (the newcomer's, as it asked),
// the wait for it to catch up ends, and makes no voter, once the node at
// addr answers with another: it was opened again since it asked (its
// join abandoned, OpenContext's context ended), on a folder that may be
// empty, its raft taking part in nothing yet; it asks for itself.
func (n *Node) addServer(ctx context.Context, id, addr string, fresh bool, incarnation string) error {
	r := n.rn.raft
	if r.State() != raft.Leader {
		return n.notLeader()
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	added := false // id is at addr already, a non-voter
	for _, s := range servers {
		switch {
		case string(s.ID) != id:
		case s.Suffrage == raft.Voter && fresh:
			return fmt.Errorf("%w: %s is a voter of the cluster, yet it joins with no raft state (was its folder lost?): "+
				"remove it first (livekv cluster remove %s), then join the node under a new ID", ErrJoinRefused, id, id)
		case s.Suffrage == raft.Voter && string(s.Address) == addr:
			return nil // joined already
		case string(s.Address) == addr:
			added = true
		}
	}
	if err := n.checkAddress(ctx, id, addr, servers); err != nil {
		return err
	}
	for _, s := range servers {
		switch {
		case string(s.ID) == id && string(s.Address) == addr:
		case string(s.ID) == id || string(s.Address) == addr:
			// A node that came back under a new address, or a new
			// node on the address of a dead one (checkAddress): the
			// old entry goes first.
			if err := n.reconfigure(ctx, func() error { return r.RemoveServer(s.ID, 0, 0).Error() }); err != nil {
				return err
			}
		}
	}
	if !added {
		if err := n.gatedCtx(ctx, func() error { return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error() }); err != nil {
			return n.raftError(err)
		}
	}
	if fresh {
		return nil // it asks again, its raft open, to become a voter
	}
	for {
		resp, err := n.rpc.call(ctx, addr, &rpcRequest{Op: opStatus})
		if err == nil && resp.Status != nil && resp.Status.ID != id {
			// Another node answers at addr, which none did or the
			// newcomer did before: the newcomer's entry, which would
			// send that node raft's messages, goes again.
			err := fmt.Errorf("%w: %s answers as %s, not %s", ErrJoinRefused, addr, resp.Status.ID, id)
			return errors.Join(err, n.reconfigure(ctx, func() error { return r.RemoveServer(raft.ServerID(id), 0, 0).Error() }))
		}
		if err == nil && incarnation != "" && resp.Incarnation != incarnation {
			return fmt.Errorf("cluster: %s was opened again since it asked to join", id)
		}
		if err == nil && resp.Status != nil && resp.Status.Applied+catchUpEntries >= r.LastIndex() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s did not catch up: %w", id, ctx.Err())
		case <-n.done:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
	return n.reconfigure(ctx, func() error { return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error() })
}

// checkAddress returns nil if the newcomer id may have addr, by the
// status of the node there: it answers as id, or no node answers (a dead
// member's address then goes to the newcomer, whose status the catch-up
// asks again). A node answering under another ID is alive and keeps its
// address, the member of the configuration servers included:
// ErrJoinRefused.
func (n *Node) checkAddress(ctx context.Context, id, addr string, servers []raft.Server) error {
	ctx, cancel := context.WithTimeout(ctx, addressCheckTimeout)
	defer cancel()
	resp, err := n.rpc.call(ctx, addr, &rpcRequest{Op: opStatus})
	if err != nil || resp.Status == nil || resp.Status.ID == id {
		return nil
	}
	for _, s := range servers {
		if string(s.Address) == addr {
			return fmt.Errorf("%w: address %s is member %s's", ErrJoinRefused, addr, s.ID)
		}
	}
	return fmt.Errorf("%w: %s answers as %s, not %s", ErrJoinRefused, addr, resp.Status.ID, id)
}

// RemoveServer removes the member id from the cluster; an id that is in
// no entry of the configuration is ErrInvalidOptions, since hashicorp
// raft would take it as done and a mistyped ID would leave the node meant
// a voter. On a follower the request is forwarded to the leader. A
// forwarded removal whose reply was lost on the network is sent again,
// and then a "no server" answer means that it is done: the member is
// gone, by the first request or another.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if n.closed() {
		return ErrClosed
	}
	if n.IsLeader() {
		return n.removeServer(ctx, id)
	}
	req := &rpcRequest{Op: opRemove, ID: id}
	_, err := n.toLeader(ctx, req, false)
	if err == nil || retryable(err, false) || !retryable(err, true) {
		return err // done, or refused, or out of time
	}
	// Failed on the network once sent: the request may have reached
	// the leader and removed id, so the answer to the second one cannot
	// tell a mistyped ID from that.
	_, err = n.toLeader(ctx, req, true)
	if errors.Is(err, ErrInvalidOptions) {
		return nil
	}
	return err
}

// removeServer removes id on the leader, once it has checked that id is
// in the configuration (the latest one, committed or not).
func (n *Node) removeServer(ctx context.Context, id string) error {
	r := n.rn.raft
	if r.State() != raft.Leader {
		return n.notLeader()
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return string(s.ID) == id }) {
		return fmt.Errorf("%w: no server %q in the cluster", ErrInvalidOptions, id)
	}
	return n.reconfigure(ctx, func() error { return r.RemoveServer(raft.ServerID(id), 0, 0).Error() })
}

// TransferLeadership hands leadership to the voter id, or to the most
// up-to-date voter if id is empty; to the leader itself it is done at
// once. An id that is not a voter is ErrInvalidOptions. On a follower it
// is forwarded to the leader: sent again after a reply lost on the
// network only when it names id (the second finds it done), since a
// transfer to any voter would move leadership twice.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if n.closed() {
		return ErrClosed
	}
	if !n.IsLeader() {
		_, err := n.toLeader(ctx, &rpcRequest{Op: opTransfer, ID: id}, id != "")
		return err
	}
	return n.transfer(ctx, id)
}

// transfer hands leadership on, on the leader; a transfer still under
// way when ctx ends is ErrUncertain.
func (n *Node) transfer(ctx context.Context, id string) error {
	r := n.rn.raft
	if r.State() != raft.Leader {
		return n.notLeader()
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	var to *raft.Server
	if id == "" {
		// raft would answer "cannot find peer".
		if !slices.ContainsFunc(servers, func(s raft.Server) bool {
			return s.Suffrage == raft.Voter && string(s.ID) != n.opts.NodeID
		}) {
			return fmt.Errorf("%w: no other voter to hand leadership to", ErrInvalidOptions)
		}
	} else {
		for _, s := range servers {
			if string(s.ID) == id {
				to = &s
			}
		}
		if to == nil {
			return fmt.Errorf("%w: no server %q in the cluster", ErrInvalidOptions, id)
		}
		if to.Suffrage != raft.Voter {
			// raft would send it TimeoutNow all the same: its vote
			// request, of a higher term, would depose this leader,
			// and the voters refuse it their votes.
			return fmt.Errorf("%w: server %q is not a voter (yet): it cannot lead", ErrInvalidOptions, id)
		}
		if id == n.opts.NodeID {
			return nil // it leads already: a forwarded transfer sent again finds it done
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoLeader, err) // nothing done
	}
	// The voters grant the target their votes although they know this
	// leader: no lease holds from now on in this term.
	n.noLease.Store(r.CurrentTerm())
	// Raft refuses entries while the transfer runs: stop taking writes
	// now, so that writers learn at once that theirs did not commit (a
	// write arriving meanwhile waits for the new leader, or for this
	// one, should the transfer fail).
	var gen uint64 // the generation of the stint ended here, or of a later one
	if n.rep != nil {
		n.rep.endStint("leadership handed on")
		gen = n.rep.gen.Load()
	}
	err := n.gatedCtx(ctx, func() error {
		if to == nil {
			return r.LeadershipTransfer().Error()
		}
		return r.LeadershipTransferToServer(to.ID, to.Address).Error()
	})
	if err != nil && n.rep != nil {
		n.rep.askRestart(gen)
	}
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrUncertain) || errors.Is(err, ErrNoLeader) {
		return err // ours already (gatedCtx)
	}
	if typed := n.raftError(err); typed != err {
		return typed
	}
	// raft's own strings: the target did not take over within the
	// election timeout ("leadership transfer timeout"), or could not be
	// told to. It may yet stand, having been told.
	return fmt.Errorf("%w: leadership was not handed on: %w", ErrUncertain, err)
}

// raftError is err, from a raft future of this node's, as this package's
// error when raft's says what happened: a node that is not the leader
// (it forwards nothing: the caller does), a leader handing leadership
// on, which refuses changes meanwhile, or whose raft queues no more
// (ErrNoLeader: the next leader takes them), a change whose leader was
// deposed before it committed (ErrUncertain), raft stopped. Others are
// returned as they are.
func (n *Node) raftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader()
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: the leader is handing leadership on: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: the leader's raft takes no more requests now: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: leadership was lost before the change committed: %w", ErrUncertain, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		if err := n.usable(); err != nil {
			return err
		}
		return fmt.Errorf("%w: raft has stopped: %w", ErrNoLeader, err)
	}
	return err
}

// Leave takes this node out of the cluster: a leader first hands its
// leadership on, then the leader removes this node. A node that is in the
// configuration no more has left already: that is no error. Close it
// afterwards.
func (n *Node) Leave(ctx context.Context) error {
	if n.closed() {
		return ErrClosed
	}
	// What the node holds may be behind the leader's configuration, both
	// ways. One removed hears from no leader, and, no voter in the
	// configuration it holds, calls no election: asking a leader would
	// wait for ever. One removed while it was cut off or down never heard
	// of it, and knows no leader either. And one that joined moments ago
	// may have heard from no leader yet: it holds no configuration, or a
	// snapshot's from before its joining. So unless it is listed and has
	// a leader, the leader, asked through the members it knows of, says
	// whether it is one.
	f := n.rn.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	stored := f.Configuration().Servers
	listed := slices.ContainsFunc(stored, func(s raft.Server) bool { return string(s.ID) == n.opts.NodeID })
	if addr, _ := n.rn.raft.LeaderWithID(); !listed || addr == "" {
		s, err := n.askCluster(ctx, n.knownAddrs(stored), memberCheckTimeout, true)
		switch {
		case err == nil && n.removedBy(s):
			return nil
		case err != nil && !listed && len(stored) > 0:
			return nil // out, as it holds, and no leader says otherwise
		}
	}
	if n.IsLeader() {
		if err := n.transfer(ctx, ""); err != nil {
			return err
		}
	}
	for {
		err := n.RemoveServer(ctx, n.opts.NodeID)
		if errors.Is(err, ErrInvalidOptions) {
			return nil // out of the configuration already: a second Leave, say
		}
		if err == nil || !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		// Still the leader: the transfer has not taken yet, or raft
		// still refuses changes after it.
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// knownAddrs returns the raft addresses of the members of stored, of
// the founders and of the nodes the node joined through, once each.
func (n *Node) knownAddrs(stored []raft.Server) []string {
	var addrs []string
	for _, s := range stored {
		addrs = append(addrs, string(s.Address))
	}
	for _, p := range n.opts.Peers {
		addrs = append(addrs, p.Addr)
	}
	addrs = append(addrs, n.opts.Join...)
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

// leadership follows this node's leadership: on gaining it, it applies a
// barrier before the node serves as leader; on losing it, it stops.
func (n *Node) leadership() {
	defer n.wg.Done()
	r := n.rn.raft
	var restart chan struct{} // nil, never ready, without a replicator
	if n.rep != nil {
		restart = n.rep.restart
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case leading := <-r.LeaderCh():
			n.readyTerm.Store(0)
			if n.rep != nil {
				n.rep.endStint("leadership lost")
			}
			if !leading {
				continue
			}
			if term := r.CurrentTerm(); n.lead(term) {
				n.readyTerm.Store(term)
				if n.rep != nil {
					n.rep.sweeps.wake() // keys may be due: only a leader sweeps
				}
			}
		case <-restart:
			// The stint broke, or a transfer failed: if this node
			// still leads in the term it is ready in, and has not
			// started a stint since, it takes writes again.
			if term := n.readyTerm.Load(); term != 0 && n.rep.restartWanted() && n.lead(term) {
				n.rep.sweeps.wake() // keys came due while it took no writes
			}
		}
	}
}

// lead starts a stint of writes on this node, leading in term. It ends
// the stint it may hold first and waits until raft has every entry
// packed in it (quiesce), then applies a barrier, which returns once
// every entry before it, of earlier terms or of that stint, is applied
// or refused; so the new stint fails, as not committed, only writes that
// are in no entry. Then, if this node still leads in term, the stint
// starts. It reports whether it did.
func (n *Node) lead(term uint64) bool {
	r := n.rn.raft
	if n.rep != nil {
		n.rep.quiesce("the leader started its writes anew")
	}
	before := r.LastIndex() // every entry up to it comes before the barrier
	for {
		err := n.gated(func() error { return r.Barrier(0).Error() })
		if err == nil {
			break
		}
		// Raft refuses entries, barriers included, while a transfer
		// runs, and for a while after a failed one has answered: it
		// clears the flag once the transfer's work has stopped.
		if !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return false // lost leadership or shutting down
		}
		// Asked again: once leadership is lost, the barrier says so.
		select {
		case <-n.ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	if r.State() != raft.Leader || r.CurrentTerm() != term {
		return false
	}
	n.sm.tracker().dropThrough(before)
	if n.rep != nil {
		// A request to lead again made by now (a failed transfer, an
		// entry of the last stint refused or skipped) is answered by
		// this stint: it names an older one (restartWanted).
		n.rep.startStint()
	}
	return true
}

// isReady reports whether this node leads in the term in which it applied
// its barrier. A term, not a flag: raft keeps only the latest of its
// leadership notifications, so a node that lost leadership and won it
// again in a later term before leadership saw either would otherwise
// look ready in the new term, before its barrier there.
func (n *Node) isReady() bool {
	t := n.readyTerm.Load()
	r := n.rn.raft
	return t != 0 && r.CurrentTerm() == t && r.State() == raft.Leader
}

// setServed records that this node has caught up; only catchUp calls it.
func (n *Node) setServed() {
	n.served.Store(true)
	close(n.caughtUp)
	if g := n.rn.gate; g != nil {
		g.openUp() // caught up: it votes and stands as any member
	}
}

// catchUp sets served once this node has applied what the cluster had
// committed when it first heard from a leader.
func (n *Node) catchUp() {
	defer n.wg.Done()
	for !n.served.Load() {
		if n.isReady() {
			n.setServed()
			return
		}
		if !n.IsLeader() {
			ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
			ri, err := n.remoteReadIndex(ctx)
			if err == nil && n.waitReadIndex(ctx, ri) == nil {
				n.setServed()
			}
			cancel()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// handle answers one cluster RPC request.
func (n *Node) handle(req *rpcRequest) *rpcResponse {
	if !n.serving.Load() {
		return errorResponse(&NotLeaderError{}) // starting: no leader known yet
	}
	wait := joinTimeout
	if req.Left > 0 {
		wait = min(wait, req.Left) // no longer than the sender waits
	}
	ctx, cancel := context.WithTimeout(n.ctx, wait)
	defer cancel()
	var err error
	resp := &rpcResponse{}
	switch req.Op {
	case opStatus:
		if req.Confirm && n.IsLeader() {
			// A leader that has not applied its barrier yet answers
			// once it has, if that comes while the asker waits (an
			// asker that did not say waits a member check's time).
			ready := ctx
			if req.Left <= 0 {
				var cancel context.CancelFunc
				ready, cancel = context.WithTimeout(ctx, memberCheckTimeout)
				defer cancel()
			}
			if err = n.readyLeader(ready); err != nil {
				break
			}
			if _, err = n.sharedReadIndex(); err != nil {
				break
			}
		}
		s := n.Status()
		resp.Status = &s
		resp.Incarnation = n.incarnation
	case opJoin:
		// A newcomer that gave up waiting is not made a voter later,
		// unasked: it asks again.
		err = n.addServer(ctx, req.ID, req.Addr, req.Fresh, req.Incarnation)
	case opRemove:
		err = n.removeServer(ctx, req.ID)
	case opTransfer:
		err = n.transfer(ctx, req.ID)
	case opLease:
		err = n.answerLease(req, resp)
	case opReadIndex:
		var ri readIndex
		ri, err = n.sharedReadIndex()
		resp.Index, resp.Rev = ri.index, ri.rev
	case opSet, opPutIfAbsent, opCAS, opPatch, opIncrement, opDelete:
		if n.db == nil {
			err = fmt.Errorf("cluster: this node has no database")
			break
		}
		resp.Result, err = n.executeWithin(req, forwardedWaitFor(req.Left))
		if errors.Is(err, errBetweenStints) {
			err = n.notLeader() // nothing done: the forwarder asks again
		}
		err = writeError(err)
	default:
		err = fmt.Errorf("cluster: unknown rpc op %q", req.Op)
	}
	if err != nil {
		r := errorResponse(err)
		if wire.Refused(err) && resp.Result != nil { // a write's
			r.Rev = resp.Result.Revision // the state it reflects, for the writer's session
		}
		return r
	}
	return resp
}

// readIndex is what a read must wait for a node to have applied to see
// every write acknowledged before the read began.
type readIndex struct {
	index uint64 // the leader's commit index, for a node without a database
	rev   int64  // the revision the leader showed once it had applied index
}

// leaderReadIndex returns the read index, taken once a quorum confirmed
// that this node still leads (the Raft thesis, §6.4): the commit index,
// and with a database the revision this node shows once it has applied
// the entries up to it (see committedReadIndex). A revision rather than a
// raft index for the reading node, since raft's no-op and barrier
// entries never reach the FSM, so a follower's FSM may never reach such
// an index.
//
// The index is taken and leadership confirmed in one term: the term is
// read first and asked again last. A node that lost leadership and won it
// back in between (a long stall) would have the index of its old term
// confirmed in its new one, while another leader's writes, acknowledged
// before the read began, came between: it refuses (ErrNoLeader) instead.
func (n *Node) leaderReadIndex() (readIndex, error) {
	r := n.rn.raft
	term := r.CurrentTerm()
	if r.State() != raft.Leader {
		return readIndex{}, n.notLeader()
	}
	if !n.isReady() {
		// A new leader's commit index may still lag its predecessor's
		// until its barrier is applied.
		return readIndex{}, fmt.Errorf("%w: the leader is not ready yet", ErrNoLeader)
	}
	ci := r.CommitIndex()
	if n.opts.afterReadIndex != nil {
		n.opts.afterReadIndex()
	}
	if n.opts.LeaseReads {
		// A lease round confirms leadership as VerifyLeader does, and
		// renews the lease besides. (Callers that a lease lets go
		// without a round do not come here.)
		if err := n.leaseRound(); err != nil {
			return readIndex{}, err
		}
	} else if err := n.gated(func() error { return r.VerifyLeader().Error() }); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return readIndex{}, n.notLeader()
		}
		return readIndex{}, err
	}
	if r.CurrentTerm() != term {
		return readIndex{}, fmt.Errorf("%w: leadership changed while the read index was confirmed", ErrNoLeader)
	}
	return n.committedReadIndex(ci)
}

// committedReadIndex is the read index of this node, the leader, at its
// commit index ci: ci, and the newest revision it has applied once it has
// applied every entry up to ci. What it has published alone would not
// do: raft tells the followers of a commit while the leader may still be
// applying it, so a follower may have served a read that saw an entry the
// leader has not applied (see appliedTracker). The wait is for this
// node's own FSM, which applies committed entries as fast as it can.
func (n *Node) committedReadIndex(ci uint64) (readIndex, error) {
	ri := readIndex{index: ci}
	if n.db == nil {
		return ri, nil
	}
	if t := n.sm.tracker(); !t.appliedThrough(ci) {
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
		defer cancel()
		if err := t.waitThrough(ctx, ci); err != nil {
			if n.closed() {
				return readIndex{}, ErrClosed
			}
			return readIndex{}, err
		}
	}
	ri.rev = max(n.db.Revision(), n.rep.appliedRev.Load())
	return ri, nil
}

// showsCommitted reports, without waiting, whether this node's visible
// state holds every entry committed so far, by its commit index.
func (n *Node) showsCommitted() bool {
	return n.sm.tracker().appliedThrough(n.rn.raft.CommitIndex()) &&
		n.db.Revision() >= n.rep.appliedRev.Load()
}

// waitReadIndex waits until this node has applied ri.
func (n *Node) waitReadIndex(ctx context.Context, ri readIndex) error {
	if n.db != nil {
		return n.waitRevision(ctx, ri.rev)
	}
	return n.sm.tracker().wait(ctx, ri.index)
}

// gated runs fn, which waits for a raft future, unless the node is
// closing; see gate.
func (n *Node) gated(fn func() error) error {
	n.gate.RLock()
	defer n.gate.RUnlock()
	if n.closed() {
		return ErrClosed
	}
	return fn()
}

// gatedCtx is gated, but returns once ctx ends, ErrUncertain, if fn has
// not: raft's loop may be held up (its disk stalled), and a change it
// has not answered may yet be made. fn then runs on until raft answers
// it, and Close waits for it, as for any pending future. With ctx over
// already, fn does not run.
func (n *Node) gatedCtx(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	}
	done := make(chan error, 1)
	go func() { done <- n.gated(fn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: raft has not answered: %w", ErrUncertain, ctx.Err())
	}
}

// linearize waits until this node has applied every entry committed
// before the call, as the leader confirms with a quorum: a read made
// afterwards is linearizable. On a follower the leader supplies the index
// over the RPC and the wait is local.
func (n *Node) linearize(ctx context.Context) error {
	var ri readIndex
	for {
		var err error
		if n.IsLeader() {
			ri, err = n.sharedReadIndex()
		} else {
			ri, err = n.remoteReadIndex(ctx)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-n.done:
			return ErrClosed
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := n.waitReadIndex(ctx, ri); err != nil {
		return err
	}
	if n.opts.linearized != nil {
		n.opts.linearized()
	}
	return nil
}
