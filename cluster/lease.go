package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// Lease reads (Options.LeaseReads). A linearizable read must not miss a
// write another leader committed, so ReadIndex confirms with a quorum
// that this node still leads, a network round per batch of reads. A lease
// lets the leader skip that round for a while: once a quorum of voters
// has told it, after a moment start, that they follow it in its term,
// none of them grants a vote to anyone else before its own heartbeat
// timeout runs out, so no other leader can be elected before then.
//
// What hashicorp/raft guarantees and the lease relies on:
//
//   - A follower that knows a leader refuses votes (and pre-votes) to
//     other candidates (raft.go, requestVote), unless the candidate was
//     started by a leadership transfer.
//   - It forgets its leader only when its heartbeat timer fires with no
//     contact for HeartbeatTimeout (runFollower), when it sees a higher
//     term (then a leader of that term exists already), or when it is
//     told to start a transfer election (TimeoutNow, which only a leader
//     sends).
//
// So a follower answers a lease request with how much longer it will
// refuse votes: its own HeartbeatTimeout less the time since it last
// heard from the leader (raft's LastContact, read before it checks that
// it still follows the asker in the asker's term). The leader counts from the
// moment it sent the request, which is before the follower answered,
// takes nine tenths of the remainder (clocks of different machines may
// run at slightly different rates), and keeps the bound that a quorum,
// itself included, reached.
//
// The exceptions are handled here:
//
//   - A transfer: a leader that starts one (TransferLeadership, Leave)
//     stops using its lease for the rest of its term, before it sends
//     TimeoutNow.
//   - A change of the voters: the lease was granted by a quorum of the
//     voters before it, which a quorum after it may not include (add two
//     voters to three). A change counts itself in Node.voters before it
//     starts and after it ends, and a lease holds only while the count
//     is the one its round began with; the next round asks the new
//     voters (raft's latest configuration, committed or not).
//   - A follower that restarts forgets its leader and would vote at once:
//     a node whose directory holds raft state waits HeartbeatTimeout
//     before it starts raft (startRaft), so that every lease it granted
//     before it went down has run out.
//
// What the lease assumes beyond raft: the clocks of the nodes advance at
// rates within 10% of each other, and a TimeoutNow message from a
// transfer is not delayed past a later election. docs/cluster.md says so.

// leaseFraction is the share of a follower's remaining heartbeat timeout
// the leader counts on, in tenths.
const leaseFraction = 9

// leaseGrant is a lease: this node's term, and the moment, in ns of the
// node's monotonic clock (Node.now), before which no other leader can
// be elected.
type leaseGrant struct {
	term   uint64
	voters uint64 // Node.voters when the round that granted it began
	until  int64
}

// now returns the node's monotonic clock, in ns since it opened.
func (n *Node) now() int64 { return int64(time.Since(n.opened)) }

// leaseValid reports whether this node leads under a lease that still
// runs, in its current term, with its barrier applied. On true, this
// node's commit index covers every write acknowledged before the call,
// by any node: once it has applied that index (showsCommitted), its state
// may be read. When less than a quarter of a heartbeat timeout
// is left (a lease is at most nine tenths of one) it starts a renewal in
// the background, so that steady readers never wait for one.
func (n *Node) leaseValid() bool {
	if !n.opts.LeaseReads {
		return false
	}
	g := n.lease.Load()
	if g == nil {
		return false
	}
	if n.readyTerm.Load() != g.term || !n.isReady() || n.noLease.Load() == g.term || n.voters.Load() != g.voters {
		return false
	}
	left := g.until - n.now()
	if left <= 0 {
		return false
	}
	if left < int64(n.rn.heartbeat)/4 && n.renewing.CompareAndSwap(false, true) {
		n.renewInBackground()
	}
	return true
}

// renewInBackground runs a shared read round, which renews the lease
// although the current one still runs, in a goroutine of the node's.
func (n *Node) renewInBackground() {
	n.gate.RLock()
	defer n.gate.RUnlock()
	if n.closed() {
		n.renewing.Store(false)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.renewing.Store(false)
		_, _ = n.sharedRound()
	}()
}

// leaseRound asks every other voter whether it follows this node in its
// term and, once a quorum (this node included) said yes, stores the
// lease they grant. It confirms leadership as VerifyLeader does: at a
// moment after the call, a quorum followed this node in its term, so no
// leader of a later term existed when the call began.
func (n *Node) leaseRound() error {
	r := n.rn.raft
	voters := n.voters.Load()
	term := r.CurrentTerm()
	if r.State() != raft.Leader {
		return n.notLeader()
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return ErrClosed
		}
		return err
	}
	var peers []raft.Server
	self := false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if string(s.ID) == n.opts.NodeID {
			self = true
			continue
		}
		peers = append(peers, s)
	}
	if !self {
		return fmt.Errorf("%w: this node is not a voter", ErrNoLeader)
	}
	quorum := (len(peers)+1)/2 + 1
	need := quorum - 1 // followers' answers needed besides this node's own
	hb := int64(n.rn.heartbeat)
	start := n.now()
	if need == 0 {
		n.grant(term, voters, start+hb*leaseFraction/10)
		return nil
	}

	ctx, cancel := context.WithTimeout(n.ctx, n.rn.heartbeat)
	type answer struct {
		until int64
		err   error
	}
	answers := make(chan answer, len(peers))
	n.gate.RLock()
	if n.closed() {
		n.gate.RUnlock()
		cancel()
		return ErrClosed
	}
	n.wg.Add(len(peers))
	for _, s := range peers {
		go func() {
			defer n.wg.Done()
			resp, err := n.rpc.call(ctx, string(s.Address), &rpcRequest{Op: opLease, ID: n.opts.NodeID, Term: term})
			if err != nil {
				answers <- answer{err: err}
				return
			}
			left := resp.Left
			answers <- answer{until: start + left*leaseFraction/10}
		}()
	}
	n.gate.RUnlock()
	// The answers of the peers not waited for land in the buffered
	// channel; cancel ends their calls once the round is decided.
	defer cancel()

	var untils []int64
	var errs []error
	for range peers {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err)
		} else {
			untils = append(untils, a.until)
		}
		if len(untils) >= need {
			break
		}
		if len(errs) > len(peers)-need {
			break
		}
	}
	if len(untils) < need {
		if n.closed() {
			return ErrClosed
		}
		if r.State() != raft.Leader {
			return n.notLeader()
		}
		return fmt.Errorf("%w: a quorum did not confirm this leader: %w", ErrNoLeader, errors.Join(errs...))
	}
	// The quorum's bound is the one that `need` followers all reach.
	slices.Sort(untils)
	n.grant(term, voters, untils[len(untils)-need])
	return nil
}

// grant stores a lease for term and voters running until until, unless
// the one stored is newer: of a later term, of later voters (a round that
// began before a change and ended after a round that began after it), or
// of the same ones and longer.
func (n *Node) grant(term, voters uint64, until int64) {
	for {
		old := n.lease.Load()
		if old != nil && (old.term > term || old.term == term && (old.voters > voters || old.voters == voters && old.until >= until)) {
			return
		}
		if n.lease.CompareAndSwap(old, &leaseGrant{term: term, voters: voters, until: until}) {
			return
		}
	}
}

// answerLease answers a leader's lease request, if this node follows the
// asker in the asker's term: how much longer it will refuse votes to
// anyone else, by its own heartbeat timeout (which need not be the
// leader's) less the time since it last heard from its leader.
func (n *Node) answerLease(req *rpcRequest, resp *rpcResponse) error {
	r := n.rn.raft
	// Read the last contact first: this node forgets its leader no
	// sooner than HeartbeatTimeout after it, and any later check that
	// it still follows the asker makes the bound hold from then on.
	left := n.rn.heartbeat - time.Since(r.LastContact())
	_, leader := r.LeaderWithID()
	if r.State() != raft.Follower || string(leader) != req.ID || r.CurrentTerm() != req.Term {
		return fmt.Errorf("%w: %s does not follow %s in term %d", ErrNotLeader, n.opts.NodeID, req.ID, req.Term)
	}
	resp.Left = int64(left)
	return nil
}

// reconfigure runs fn, which changes the voters, counting the change in
// n.voters before and after it: any lease granted before it ends, and any
// granted by a round that began during it, which may have asked the old
// voters. A change still under way when ctx ends is ErrUncertain, and
// counted once raft has answered it.
func (n *Node) reconfigure(ctx context.Context, fn func() error) error {
	return n.raftError(n.gatedCtx(ctx, func() error {
		n.voters.Add(1)
		defer n.voters.Add(1)
		return fn()
	}))
}
