package cluster

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// foundingIndex is the index of the founding configuration, the one entry
// raft.BootstrapCluster writes.
const foundingIndex = 1

// voteGate is the transport of a node that founded its cluster at this
// start, with no raft state: a founder starting for the first time, or
// one whose folder was lost and that was started again with its founding
// peers. Until it has caught up with a leader, it refuses its vote, and
// its pre-vote, to every candidate whose log has gone past the founding
// configuration: the cluster has run, and the node may have stored
// entries before and lost them. Having lost its log, it would vote for
// any candidate, one that lacks entries it had helped to commit
// included, and such a candidate could win with its vote and lose them;
// having lost its term and vote, it could vote twice in one term.
//
// The node asks the other founders as it starts whether the cluster has
// run (Node.clusterHasRun); if none has, or none answers, the gate is
// lifted: founders starting together vote from their first election on,
// whatever comes after it. Until the answers come, a candidate past the
// founding configuration (one a leader has written to since) is refused.
//
// Caught up means that the node has served (Node.served: it has applied
// a read index a leader gave it), or that it holds the entry at the
// commit index a leader sent it in an AppendEntries, and that entry was
// written in that leader's term: such a leader had committed an entry of
// its own term, so its commit index covers every entry committed before
// it (raft's leader completeness), and the node's log matches the
// leader's up to it. (A leader's commit index from before its first
// commit, which it holds over from its time as a follower, may not cover
// everything committed: that evidence is passed over.)
//
// The price: a founder that never ran, started after the others had,
// does not vote before it has caught up either, so if one of the others
// is down as well, the cluster waits for it rather than elect a leader
// with the newcomer's vote (docs/cluster.md, "Join").
type voteGate struct {
	syncTransport
	caughtUp    func() bool
	commitIndex func() uint64                     // raft's on this node
	termAt      func(index uint64) (uint64, bool) // the term of the entry at index in this node's log, if it holds one
	header      raft.RPCHeader                    // this node's, in its refusals
	rpcs        chan raft.RPC
	done        chan struct{}
	wg          sync.WaitGroup
	lifted      atomic.Bool // the cluster had not run when the node started

	// run's alone:
	commit, term uint64 // the latest commit index a leader sent, with its term
	caught       bool   // isCaughtUp said so once
}

// The gate keeps raft's pre-vote, and its Close.
var (
	_ raft.WithPreVote = (*voteGate)(nil)
	_ raft.WithClose   = (*voteGate)(nil)
)

// newVoteGate returns the gate of the node id at addr over t; caughtUp
// reports whether the node has served. start runs it, close stops it.
func newVoteGate(t syncTransport, id, addr string, caughtUp func() bool) *voteGate {
	return &voteGate{syncTransport: t, caughtUp: caughtUp, rpcs: make(chan raft.RPC), done: make(chan struct{}),
		header: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}}
}

// Consumer is the channel raft takes its requests from.
func (g *voteGate) Consumer() <-chan raft.RPC { return g.rpcs }

// start passes the requests from in (the transport's) on to raft,
// holding back the votes the node may not give yet. commitIndex and
// termAt read raft's state, which runs by now.
func (g *voteGate) start(in <-chan raft.RPC, commitIndex func() uint64, termAt func(uint64) (uint64, bool)) {
	g.commitIndex, g.termAt = commitIndex, termAt
	g.wg.Add(1)
	go g.run(in)
}

func (g *voteGate) run(in <-chan raft.RPC) {
	defer g.wg.Done()
	for {
		select {
		case rpc := <-in:
			if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && !g.isCaughtUp() && req.LeaderCommitIndex > foundingIndex {
				g.commit, g.term = req.LeaderCommitIndex, req.Term
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
		if req.LastLogIndex > foundingIndex && !g.isCaughtUp() {
			return &raft.RequestVoteResponse{RPCHeader: g.header, Term: req.Term}
		}
	case *raft.RequestPreVoteRequest:
		if req.LastLogIndex > foundingIndex && !g.isCaughtUp() {
			return &raft.RequestPreVoteResponse{RPCHeader: g.header, Term: req.Term}
		}
	}
	return nil
}

// isCaughtUp reports whether the node has caught up with a leader. Once
// it has, it is a member like any other and stays caught up, though a
// later leader's commit index runs ahead of its own. It is asked as each
// AppendEntries comes, before the gate notes the commit index it brings:
// the leader waited for the answer to the one before (syncTransport), so
// raft has taken in the commit index noted last.
func (g *voteGate) isCaughtUp() bool {
	if !g.caught {
		g.caught = g.lifted.Load() || g.caughtUp() || g.holdsCommitted()
	}
	return g.caught
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

// lift lets every vote through: the cluster had not run when the node
// started.
func (g *voteGate) lift() { g.lifted.Store(true) }

// close stops passing requests on, if start ran; the transport must be
// closed first, so that none waits for raft any more.
func (g *voteGate) close() {
	close(g.done)
	g.wg.Wait()
}

// clusterHasRun asks the other founders at once, each for at most
// memberCheckTimeout, whether the cluster has run: whether the raft log
// of one that answers has gone past the founding configuration. Founders
// starting together find none that has (or none that answers yet).
func (n *Node) clusterHasRun(peers []Peer) bool {
	ctx, cancel := context.WithTimeout(n.ctx, memberCheckTimeout)
	defer cancel()
	answers := make(chan bool, len(peers))
	asked := 0
	for _, p := range peers {
		if p.Addr == n.opts.RaftAddr {
			continue
		}
		asked++
		go func() {
			resp, err := n.rpc.call(ctx, p.Addr, &rpcRequest{Op: opStatus})
			answers <- err == nil && resp.Status != nil && resp.Status.LastIndex > foundingIndex
		}()
	}
	hasRun := false
	for range asked {
		hasRun = <-answers || hasRun
	}
	return hasRun
}
