package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// foundingIndex is the index of the founding configuration, the one entry
// raft.BootstrapCluster writes.
const foundingIndex = 1

// voteGate is the transport of a node that founded its cluster with no
// raft state: a founder starting for the first time, or one whose folder
// was lost and that was started again with its founding peers. Until it
// has caught up with a leader, it refuses its vote, and its pre-vote, to
// every candidate whose log has gone past the founding configuration (a
// leader has written to the cluster since, so the node may have stored
// entries before and lost them) but one a leader hands leadership over
// to, which holds the leader's whole log. Having lost its log, it would
// vote for any candidate, one that lacks entries it had helped to commit
// included, and such a candidate could win with its vote and lose them;
// and having lost its term and vote, it could vote twice in one term.
// (It may still stand itself: holding part of the log, it could win the
// vote of a member further behind; kept from standing, a new cluster
// whose leader went in its first moments waited for it.)
//
// The node asks the other founders (Node.clusterHasRun) whether the
// cluster has run: unless one of them has gone past the founding
// configuration, the gate is lifted, and founders starting together vote
// freely from then on. If it has, the gate is kept in the stable store
// until it opens (Node.holdGate), so that it is up again should the node
// restart before it catches up. A founder that answers that it is starting itself
// (a whole cluster restarting) is asked again until it answers with its
// status; one that cannot be reached counts as one that has not run.
//
// Caught up means that the node has served (Node.served: it has applied
// a read index a leader gave it), or that a leader handed leadership over
// to it (TimeoutNow: hashicorp/raft's leader sends it once the node holds
// its whole log), or that it holds the entry at the commit index a
// leader of its current term or a later one sent it in an AppendEntries (in
// its log, or as the last entry of a snapshot it installed), and that
// entry was written in that leader's term: such
// a leader had committed an entry of its own term, so its commit index
// covers every entry committed before it (raft's leader completeness),
// and the node's log matches the leader's up to it. (A leader's commit
// index from before its first commit, which it holds over from its time
// as a follower, may not cover everything committed: that evidence is
// passed over.)
//
// The price: a founder that never ran, started after the others had,
// does not vote before it has caught up either, so if one of the others
// is down as well, the cluster waits for it rather than elect a leader
// with the newcomer's vote (docs/cluster.md, "Join").
type voteGate struct {
	syncTransport
	header raft.RPCHeader // this node's, in its refusals
	rpcs   chan raft.RPC
	done   chan struct{}
	wg     sync.WaitGroup

	// Set by start:
	commitIndex, currentTerm func() uint64               // raft's on this node
	termAt                   func(uint64) (uint64, bool) // the term of the entry at an index, if this node holds it (raftNode.termAt)

	open     atomic.Bool   // caught up, or lifted: every vote goes through
	opened   chan struct{} // closed by openUp
	openOnce sync.Once

	// held is set, before start, for a node restarted with its gate
	// still up (keyVoteGate): it does not ask whether the cluster has
	// run, which it knew.
	held bool

	// run's alone:
	commit, term uint64 // the latest commit index a leader sent, with its term
}

// The gate keeps raft's pre-vote, and its Close.
var (
	_ raft.WithPreVote = (*voteGate)(nil)
	_ raft.WithClose   = (*voteGate)(nil)
)

// newVoteGate returns the gate of the node id at addr over t. start runs
// it, close stops it; openUp opens it (Node.setServed, and the lift
// after Node.clusterHasRun).
func newVoteGate(t syncTransport, id, addr string) *voteGate {
	return &voteGate{syncTransport: t, rpcs: make(chan raft.RPC), done: make(chan struct{}), opened: make(chan struct{}),
		header: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}}
}

// Consumer is the channel raft takes its requests from.
func (g *voteGate) Consumer() <-chan raft.RPC { return g.rpcs }

// raftState is what the gate reads of raft's state on the node.
type raftState interface {
	CommitIndex() uint64
	CurrentTerm() uint64
}

// start passes the requests from in (the transport's) on to raft,
// holding back the votes the node may not give yet. r, which runs by
// now, and termAt read raft's state.
func (g *voteGate) start(in <-chan raft.RPC, r raftState, termAt func(uint64) (uint64, bool)) {
	g.commitIndex, g.currentTerm, g.termAt = r.CommitIndex, r.CurrentTerm, termAt
	g.wg.Add(1)
	go g.run(in)
}

func (g *voteGate) run(in <-chan raft.RPC) {
	defer g.wg.Done()
	for {
		select {
		case rpc := <-in:
			switch req := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				if !g.isCaughtUp() && req.LeaderCommitIndex > foundingIndex && req.Term >= g.currentTerm() {
					g.commit, g.term = req.LeaderCommitIndex, req.Term
				}
			case *raft.TimeoutNowRequest:
				// A leader hands over only to a node that holds its
				// whole log: caught up.
				g.openUp()
			}
			if resp := g.refusal(rpc.Command); resp != nil {
				rpc.Respond(resp, nil)
				continue
			}
			select {
			case g.rpcs <- rpc:
			case <-g.done:
				return
			}
		case <-g.done:
			return
		}
	}
}

// refusal returns the answer to cmd when it asks for a vote the node may
// not give yet, or else nil. The answer names the candidate's own term,
// which makes it step down from nothing.
func (g *voteGate) refusal(cmd any) any {
	switch req := cmd.(type) {
	case *raft.RequestVoteRequest:
		// A candidate a leader handed over to holds the leader's whole
		// log: no vote for it loses an entry.
		if req.LastLogIndex > foundingIndex && !req.LeadershipTransfer && !g.isCaughtUp() {
			return &raft.RequestVoteResponse{RPCHeader: g.header, Term: req.Term}
		}
	case *raft.RequestPreVoteRequest:
		if req.LastLogIndex > foundingIndex && !g.isCaughtUp() {
			return &raft.RequestPreVoteResponse{RPCHeader: g.header, Term: req.Term}
		}
	}
	return nil
}

// isCaughtUp reports whether the gate is open: the node has caught up
// with a leader, or the cluster had not run when it started. Once it has, it is a member like any other and
// stays caught up, though a later leader's commit index runs ahead of its
// own. It is asked as each AppendEntries comes, before the gate notes the
// commit index it brings: the leader waited for the answer to the one
// before (syncTransport), so raft has taken in the commit index noted
// last.
func (g *voteGate) isCaughtUp() bool {
	if !g.open.Load() && g.holdsCommitted() {
		g.openUp()
	}
	return g.open.Load()
}

// openUp lets every vote through from now on, for good.
func (g *voteGate) openUp() {
	g.open.Store(true)
	g.openOnce.Do(func() { close(g.opened) })
}

// holdsCommitted reports whether the node holds the entry at the commit
// index noted last, written in the term of the leader that sent it, and
// has committed it.
func (g *voteGate) holdsCommitted() bool {
	if g.commit == 0 || g.commitIndex() < g.commit {
		return false
	}
	term, ok := g.termAt(g.commit)
	return ok && term == g.term
}

// close stops passing requests on, if start ran; the transport must be
// closed first, so that none waits for raft any more.
func (g *voteGate) close() {
	close(g.done)
	g.wg.Wait()
}

// holdGate decides whether the gate g stays up, and keeps that on disk
// until it opens. A founder that started with no state asks the other
// founders whether the cluster has run (clusterHasRun) and, unless it
// has, lifts the gate; one restarted with its gate held keeps it up.
// While the gate stays up, the stable store says so (keyVoteGate), so
// that the node, restarted before it catches up, gates its votes again
// rather than vote freely with the part of the log it got; once the
// gate opens, the key is cleared. (A node restarted before it had the
// answer, the key not yet set, votes freely.)
func (n *Node) holdGate(g *voteGate, peers []Peer) {
	logf := n.opts.logf()
	if !g.held {
		if !n.clusterHasRun(peers, func() bool { return !g.open.Load() }) {
			g.openUp()
			return
		}
		if g.open.Load() {
			return // caught up meanwhile
		}
		if err := n.rn.store.SetUint64(keyVoteGate, 1); err != nil {
			logf("cluster: cannot keep the vote gate on disk: %v", err)
		}
	}
	select {
	case <-g.opened:
	case <-n.ctx.Done():
		return
	}
	if err := n.rn.store.SetUint64(keyVoteGate, 0); err != nil {
		logf("cluster: cannot clear the vote gate on disk: %v", err)
	}
}

// clusterHasRun asks the other founders, each for at most
// memberCheckTimeout, whether the cluster has run: whether the raft log
// of one that answers has gone past the founding configuration. A
// founder that answers that it is starting (it knows no leader: its
// status comes once it runs) is asked again, every memberCheckTimeout,
// until gated says the gate no longer waits for the answer or the node
// closes (then it reports that the cluster has run); one that does not
// answer at all counts as one that has not.
func (n *Node) clusterHasRun(peers []Peer, gated func() bool) bool {
	var others []Peer
	for _, p := range peers {
		if p.Addr != n.opts.RaftAddr {
			others = append(others, p)
		}
	}
	for len(others) > 0 {
		ctx, cancel := context.WithTimeout(n.ctx, memberCheckTimeout)
		type answer struct {
			p              Peer
			hasRun, starts bool
		}
		answers := make(chan answer, len(others))
		for _, p := range others {
			go func() {
				resp, err := n.rpc.call(ctx, p.Addr, &rpcRequest{Op: opStatus})
				var nl *NotLeaderError
				answers <- answer{p: p, hasRun: err == nil && resp.Status != nil && resp.Status.LastIndex > foundingIndex,
					starts: errors.As(err, &nl)}
			}()
		}
		var again []Peer
		hasRun := false
		for range others {
			a := <-answers
			hasRun = hasRun || a.hasRun
			if a.starts {
				again = append(again, a.p)
			}
		}
		if hasRun || len(again) == 0 {
			cancel()
			return hasRun
		}
		<-ctx.Done() // at most one round of questions a memberCheckTimeout
		cancel()
		if !gated() || n.closed() {
			return true
		}
		others = again
	}
	return false
}
