package cluster

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// gateProbe sends requests through a voteGate as the transport would.
type gateProbe struct {
	t      *testing.T
	g      *voteGate
	in     chan raft.RPC
	commit atomic.Uint64
	term   atomic.Uint64

	mu    sync.Mutex
	terms map[uint64]uint64 // the node's log: the term of the entry at each index
}

func (p *gateProbe) CommitIndex() uint64 { return p.commit.Load() }
func (p *gateProbe) CurrentTerm() uint64 { return p.term.Load() }

func (p *gateProbe) termAt(i uint64) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.terms[i]
	return t, ok
}

func (p *gateProbe) hold(i, term uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.terms[i] = term
}

func newGateProbe(t *testing.T) *gateProbe {
	p := &gateProbe{t: t, in: make(chan raft.RPC), terms: map[uint64]uint64{}}
	p.g = newVoteGate(syncTransport{}, "n1", "addr1")
	p.g.start(p.in, p, p.termAt)
	t.Cleanup(p.g.close)
	return p
}

// send passes cmd to the gate and reports whether raft got it, or else
// the gate's own answer.
func (p *gateProbe) send(cmd any) (toRaft bool, answer any) {
	resp := make(chan raft.RPCResponse, 1)
	p.in <- raft.RPC{Command: cmd, RespChan: resp}
	select {
	case rpc := <-p.g.Consumer():
		require.Equal(p.t, cmd, rpc.Command)
		return true, nil
	case r := <-resp:
		require.NoError(p.t, r.Error)
		return false, r.Response
	}
}

func (p *gateProbe) requireVotes(lastIndex uint64) {
	p.t.Helper()
	toRaft, _ := p.send(&raft.RequestVoteRequest{Term: 7, LastLogIndex: lastIndex})
	require.True(p.t, toRaft, "vote for a candidate at %d held back", lastIndex)
	toRaft, _ = p.send(&raft.RequestPreVoteRequest{Term: 8, LastLogIndex: lastIndex})
	require.True(p.t, toRaft, "pre-vote for a candidate at %d held back", lastIndex)
}

func (p *gateProbe) requireRefuses(lastIndex uint64) {
	p.t.Helper()
	toRaft, answer := p.send(&raft.RequestVoteRequest{Term: 7, LastLogIndex: lastIndex})
	require.False(p.t, toRaft, "vote for a candidate at %d given", lastIndex)
	vote := answer.(*raft.RequestVoteResponse)
	require.False(p.t, vote.Granted)
	require.Equal(p.t, uint64(7), vote.Term, "the candidate's own term: it does not step down")
	require.Equal(p.t, []byte("n1"), vote.ID)
	toRaft, answer = p.send(&raft.RequestPreVoteRequest{Term: 8, LastLogIndex: lastIndex})
	require.False(p.t, toRaft, "pre-vote for a candidate at %d given", lastIndex)
	pre := answer.(*raft.RequestPreVoteResponse)
	require.False(p.t, pre.Granted)
	require.Equal(p.t, uint64(8), pre.Term)
}

// A founder with no state, in a cluster that has run, votes only once it
// has caught up with a leader, and then for good.
func TestVoteGate_VotesOnlyOnceCaughtUp(t *testing.T) {
	p := newGateProbe(t)
	p.requireVotes(foundingIndex) // a candidate that holds no more than the node
	p.requireRefuses(foundingIndex + 1)

	toRaft, _ := p.send(&raft.AppendEntriesRequest{Term: 3, LeaderCommitIndex: 10})
	require.True(t, toRaft, "entries go to raft")
	p.commit.Store(9)
	p.hold(9, 3)
	p.requireRefuses(20) // one entry short of what the leader had committed
	p.commit.Store(10)
	p.hold(10, 2)
	p.requireRefuses(20) // a commit index the leader held over from an earlier term
	p.hold(10, 3)
	p.requireVotes(20)

	// Caught up once, it stays so, though a later leader's commit index
	// runs ahead of its own.
	toRaft, _ = p.send(&raft.AppendEntriesRequest{Term: 4, LeaderCommitIndex: 50})
	require.True(t, toRaft)
	toRaft, _ = p.send(&raft.AppendEntriesRequest{Term: 4, LeaderCommitIndex: 60})
	require.True(t, toRaft)
	p.requireVotes(70)

	// Other requests pass untouched.
	toRaft, _ = p.send(&raft.InstallSnapshotRequest{Term: 4})
	require.True(t, toRaft)
	toRaft, _ = p.send(&raft.TimeoutNowRequest{})
	require.True(t, toRaft)
}

// The evidence is the commit index that came last: one the node took in
// before a leader sent a higher one counts too.
func TestVoteGate_CaughtUpAsTheNextEntriesCome(t *testing.T) {
	p := newGateProbe(t)
	toRaft, _ := p.send(&raft.AppendEntriesRequest{Term: 3, LeaderCommitIndex: 10})
	require.True(t, toRaft)
	p.commit.Store(10)
	p.hold(10, 3)
	toRaft, _ = p.send(&raft.AppendEntriesRequest{Term: 3, LeaderCommitIndex: 30})
	require.True(t, toRaft)
	p.requireVotes(40) // the node's commit index is still 10
}

// A founder whose cluster had not run when it started votes at once, for
// any candidate, once its gate is lifted.
func TestVoteGate_Lifted(t *testing.T) {
	p := newGateProbe(t)
	p.requireRefuses(5)
	p.g.openUp()
	p.requireVotes(5)
}

// Evidence from a leader of a term older than the node's is passed over:
// a deposed leader's commit index need not cover what its successor
// committed.
func TestVoteGate_OlderTermIsNoEvidence(t *testing.T) {
	p := newGateProbe(t)
	p.term.Store(5)
	toRaft, _ := p.send(&raft.AppendEntriesRequest{Term: 4, LeaderCommitIndex: 10})
	require.True(t, toRaft)
	p.commit.Store(10)
	p.hold(10, 4)
	p.requireRefuses(20)
	toRaft, _ = p.send(&raft.AppendEntriesRequest{Term: 5, LeaderCommitIndex: 12})
	require.True(t, toRaft)
	p.commit.Store(12)
	p.hold(12, 5)
	p.requireVotes(20)
}

// A leader hands over only to a node that holds its whole log: a vote for
// that candidate loses nothing, and a node asked to take over has caught
// up.
func TestVoteGate_LeadershipTransfer(t *testing.T) {
	p := newGateProbe(t)
	toRaft, _ := p.send(&raft.RequestVoteRequest{Term: 7, LastLogIndex: 30, LeadershipTransfer: true})
	require.True(t, toRaft, "a vote for the candidate a leader hands over to")
	p.requireRefuses(30)
	toRaft, _ = p.send(&raft.TimeoutNowRequest{})
	require.True(t, toRaft)
	p.requireVotes(30)
}
