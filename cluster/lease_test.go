package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestLease_ReadsSkipQuorumRounds checks that with LeaseReads the leader
// serves linearizable reads without a quorum round each: a few rounds
// renew the lease while many reads run, where without it every read
// takes part in one.
func TestLease_ReadsSkipQuorumRounds(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			c := newDBClusterLease(t, "", lease, 3, nil)
			_, err := c.nodes[c.leader()].Set("k", "v", nil)
			require.NoError(t, err)
			c.allServed() // no catch-up rounds from followers from here on
			const reads = 2000
			// The rounds counted are the leader's: an election in between
			// (under -race on a busy machine) makes them tell nothing, and
			// the reads run again on the new leader.
			var l *Node
			var rounds int64
			var start time.Time
			c.onSteadyLeader(func(i int) {
				l = c.nodes[i]
				before := l.reads.rounds.Load()
				start = time.Now()
				for range reads {
					it, err := l.Get("k")
					require.NoError(t, err)
					require.Equal(t, "v", it.Value)
				}
				rounds = l.reads.rounds.Load() - before
			})
			if lease {
				require.LessOrEqual(t, rounds, maxRenewals(l, time.Since(start)), "%d reads took %d rounds", reads, rounds)
			} else {
				// Every read takes a round of its own (a follower's
				// request may add one).
				require.GreaterOrEqual(t, rounds, int64(reads), "without a lease every read takes a round")
			}
		})
	}
}

// TestLease_RenewedInTheBackground checks that steady readers never find
// the lease run out: a read with less than a quarter of a heartbeat
// timeout left renews it in the background, before it lapses.
func TestLease_RenewedInTheBackground(t *testing.T) {
	c := newDBClusterLease(t, "", true, 3, nil)
	c.allServed()
	// The lapses counted are the leader's: after an election in between
	// (under -race on a busy machine) they tell nothing, and the reads run
	// again on the new leader.
	var lapses, reads int
	c.onSteadyLeader(func(i int) {
		l := c.nodes[i]
		lapses, reads = 0, 0
		_, err := l.Get("k") // the first lease
		require.ErrorIs(t, err, engine.ErrNotFound)
		deadline := time.Now().Add(10 * l.rn.heartbeat)
		for time.Now().Before(deadline) {
			if g := l.lease.Load(); g == nil || g.until <= l.now() {
				lapses++
			}
			_, err := l.Get("k")
			require.ErrorIs(t, err, engine.ErrNotFound)
			reads++
			time.Sleep(time.Millisecond)
		}
	})
	// Ten heartbeat timeouts are about eleven leases: a lease that were
	// only taken when the last one ran out would lapse about ten times.
	require.LessOrEqual(t, lapses, 2, "the lease lapsed %d times in %d reads", lapses, reads)
}

// TestLease_FollowerReadsSkipLeaderRound checks that a follower's
// linearizable read gets the read index from a leasing leader without a
// quorum round there, and still sees the write acknowledged before it.
func TestLease_FollowerReadsSkipLeaderRound(t *testing.T) {
	c := newDBClusterLease(t, "", true, 3, nil)
	c.allServed()
	const reads = 20
	// The rounds counted are the leader's: after an election in between
	// (under -race on a busy machine) the follower's retries to the old
	// leader count there too, and the reads run again on the new leader.
	// A write or read cut off by an election fails: it counts only if
	// the leader kept its role through it.
	var l *Node
	var before int64
	var start time.Time
	var err error
	c.onSteadyLeader(func(li int) {
		l = c.nodes[li]
		f := c.nodes[(li+1)%3]
		before, start = l.reads.rounds.Load(), time.Now()
		for i := range reads {
			v := fmt.Sprint(i)
			if _, err = l.Set("k", v, nil); err != nil {
				return
			}
			var it engine.Item
			if it, err = f.Get("k"); err != nil {
				return
			}
			require.Equal(t, v, it.Value, "a follower's linearizable read missed an acknowledged write")
		}
	})
	require.NoError(t, err)
	rounds := l.reads.rounds.Load() - before
	require.LessOrEqual(t, rounds, maxRenewals(l, time.Since(start)), "%d follower reads took %d rounds on the leader", reads, rounds)
}

// maxRenewals is the most lease rounds a leader may run in d: a lease
// lasts at least 0.9 × 0.9 of a heartbeat timeout (followers hear from
// the leader every tenth of one) and is renewed with a quarter left, so
// at most one round per half heartbeat timeout, and one more at each end.
func maxRenewals(l *Node, d time.Duration) int64 {
	return int64(d/(l.rn.heartbeat/2)) + 2
}

// allServed waits until every running node has caught up since it
// started (Node.served), so that no catch-up read round is still to come.
func (c *dbCluster) allServed() {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		for i := range c.nodes {
			if n := c.node(i); n != nil && !n.served.Load() {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
}

// TestLease_IsolatedLeaderStopsServing cuts the leasing leader off, lets
// the others elect a leader and commit a write, and checks that the old
// leader never serves the old value as a linearizable read: its lease
// ran out before the new leader could be elected.
func TestLease_IsolatedLeaderStopsServing(t *testing.T) {
	for round := range *rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			c := newDBClusterLease(t, "", true, 3, nil)
			li := c.settle() // not a leader about to be replaced (-race, a busy machine)
			old := c.nodes[li]
			_, err := old.Set("k", "old", nil)
			require.NoError(t, err)
			_, err = old.Get("k") // takes the lease
			require.NoError(t, err)

			// Readers on the old leader for the whole fault.
			var mu sync.Mutex
			type read struct {
				value string
				begun time.Time
			}
			var reads []read
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						begun := time.Now()
						it, err := old.Get("k")
						if err == nil {
							mu.Lock()
							reads = append(reads, read{it.Value, begun})
							mu.Unlock()
						}
					}
				}()
			}
			time.Sleep(50 * time.Millisecond)
			c.net.Isolate(li)
			ni := c.leader(li)
			it, err := c.nodes[ni].Set("k", "new", nil)
			require.NoError(t, err)
			acked := time.Now()
			time.Sleep(2 * old.rn.heartbeat)
			cancel()
			wg.Wait()
			c.net.Heal()

			mu.Lock()
			defer mu.Unlock()
			served := 0
			for _, r := range reads {
				if r.begun.After(acked) {
					require.NotEqual(t, "old", r.value, "a read begun after the new leader acknowledged revision %d returned the old value", it.Revision)
					served++
				}
			}
			t.Logf("%d reads in all, %d begun after the new write", len(reads), served)
		})
	}
}

// leaseSeen is what a leader held at one moment: its lease, its term and
// count of voter changes, whether leaseValid took the lease, and when.
type leaseSeen struct {
	grant        *leaseGrant
	term, voters uint64
	valid        bool
	at           int64
}

// seeLease reads l's lease, term and voters, then asks leaseValid.
func seeLease(l *Node) leaseSeen {
	s := leaseSeen{grant: l.lease.Load(), term: l.rn.raft.CurrentTerm(), voters: l.voters.Load()}
	s.valid = l.leaseValid()
	s.at = l.now()
	return s
}

// requireTaken checks that a read's round left a lease of the leader's
// term and of its current voters, which leaseValid takes unless it ran
// out: a follower grants its heartbeat timeout less the time since it
// last heard from the leader, so on a busy machine (-race, other
// packages' tests beside) a lease may be short, or even over when it is
// stored.
func (s leaseSeen) requireTaken(t *testing.T, when string) {
	t.Helper()
	require.NotNil(t, s.grant, "no lease %s", when)
	require.Equal(t, s.term, s.grant.term, "a lease of another term %s", when)
	require.Equal(t, s.voters, s.grant.voters, "a lease of other voters %s", when)
	if !s.valid {
		require.LessOrEqual(t, s.grant.until, s.at, "a running lease %s not taken", when)
	}
}

// running reports whether the lease seen had time left when it was seen,
// so that leaseValid's refusal then says something of why.
func (s leaseSeen) running() bool { return s.grant != nil && s.grant.until > s.at }

// TestLease_TransferEndsLease checks that a leader starting a transfer
// stops reading under its lease at once, for the rest of its term.
func TestLease_TransferEndsLease(t *testing.T) {
	// The check counts only if the leader kept its role up to the
	// transfer (under -race on a busy machine an election may come in
	// between), and its lease still had time left after it (else its
	// end tells nothing of the transfer): else it runs again on a new
	// cluster.
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 5, "leadership kept moving, or the lease kept running out")
		c := newDBClusterLease(t, "", true, 3, nil)
		li := c.leader()
		l := c.nodes[li]
		var err error
		var seen leaseSeen
		if !c.steady(li, "Leader", func() {
			_, err = l.Get("k")
			seen = seeLease(l)
		}) {
			continue
		}
		require.ErrorIs(t, err, engine.ErrNotFound)
		seen.requireTaken(t, "after a linearizable read")
		term := l.rn.raft.CurrentTerm()
		require.NoError(t, l.TransferLeadership(context.Background(), ""))
		require.Equal(t, term, l.noLease.Load())
		after := seeLease(l)
		if !after.running() {
			continue
		}
		require.False(t, after.valid, "a lease held through a transfer")
		return
	}
}

// TestLease_VotersChangeEndsLease checks that a change of the voters ends
// the lease, which a quorum of the old voters granted, and that the next
// read takes one from the new voters.
func TestLease_VotersChangeEndsLease(t *testing.T) {
	// The checks count only if the leader kept its role through them
	// (under -race on a busy machine an election may come in between),
	// and its first lease still had time left after the change (else its
	// end tells nothing of the change): else they run again on a new
	// cluster.
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 5, "leadership kept moving, or the lease kept running out")
		c := newDBClusterLease(t, "", true, 3, nil)
		li := c.leader()
		l := c.nodes[li]
		var errs [3]error
		var seen [3]leaseSeen
		if !c.steady(li, "Leader", func() {
			_, errs[0] = l.Get("k")
			seen[0] = seeLease(l)
			fi := (li + 1) % 3
			errs[1] = l.RemoveServer(context.Background(), c.peers[fi].ID)
			seen[1] = seeLease(l)
			_, errs[2] = l.Get("k")
			seen[2] = seeLease(l)
		}) || !seen[1].running() {
			continue
		}
		require.ErrorIs(t, errs[0], engine.ErrNotFound)
		seen[0].requireTaken(t, "after a linearizable read")
		require.NoError(t, errs[1])
		require.Greater(t, seen[1].voters, seen[0].voters, "a change of the voters not counted")
		require.NotEqual(t, seen[1].voters, seen[1].grant.voters, "a lease of the voters after the change, with no read since")
		require.False(t, seen[1].valid, "a lease held across a change of the voters")
		require.ErrorIs(t, errs[2], engine.ErrNotFound)
		seen[2].requireTaken(t, "from the new voters")
		return
	}
}

// TestLease_FollowerAnswers checks a follower's answer to lease
// requests: only to its leader, in its term.
func TestLease_FollowerAnswers(t *testing.T) {
	// The answers count only if the leader kept its role and term
	// through them (under -race on a busy machine an election may come
	// in between): else they are asked again of the new leader's.
	c := newDBClusterLease(t, "", true, 3, nil)
	var l, f *Node
	var term uint64
	var err error
	var resp rpcResponse
	c.onSteadyLeader(func(li int) {
		l, f = c.nodes[li], c.nodes[(li+1)%3]
		term, resp = l.rn.raft.CurrentTerm(), rpcResponse{}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if err = f.answerLease(&rpcRequest{Op: opLease, ID: l.opts.NodeID, Term: term}, &resp); err == nil || time.Now().After(deadline) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	require.NoError(t, err)
	require.Positive(t, resp.Left, "a follower of a live leader last heard from it a heartbeat timeout ago")
	require.LessOrEqual(t, time.Duration(resp.Left), f.rn.heartbeat)
	for _, req := range []*rpcRequest{
		{Op: opLease, ID: l.opts.NodeID, Term: term + 1},
		{Op: opLease, ID: l.opts.NodeID, Term: term - 1},
		{Op: opLease, ID: f.opts.NodeID, Term: term},
	} {
		err := f.answerLease(req, &rpcResponse{})
		require.ErrorIs(t, err, ErrNotLeader, "%+v", req)
	}
	// The leader itself follows no one.
	require.ErrorIs(t, l.answerLease(&rpcRequest{Op: opLease, ID: l.opts.NodeID, Term: term}, &rpcResponse{}), ErrNotLeader)
}

// TestLease_RestartWaitsOutGrantedLeases checks that a node restarted
// from its directory starts raft no sooner than a heartbeat timeout
// after Open began, so that it cannot vote while a lease it granted
// before may still run.
func TestLease_RestartWaitsOutGrantedLeases(t *testing.T) {
	c := newDBClusterLease(t, "", true, 3, nil)
	li := c.leader()
	fi := (li + 1) % 3
	c.kill(fi)
	start := time.Now()
	c.restart(fi)
	took := time.Since(start)
	require.GreaterOrEqual(t, took, c.node(fi).rn.heartbeat, "a restarted node started raft at once")
	require.False(t, errors.Is(c.node(fi).usable(), ErrClosed))
}

// TestLease_EndsBeforeFollowersMayVote checks the lease's bound itself:
// it ends before a quorum of followers may vote for anyone else (a
// heartbeat timeout after they last heard from the leader). raft's own
// leader lease makes a cut-off leader step down sooner still, so the
// fault tests alone would not notice a lease that ran too long.
func TestLease_EndsBeforeFollowersMayVote(t *testing.T) {
	c := newDBClusterLease(t, "", true, 3, nil)
	c.allServed()
	// A round counts only if the leader kept its role through it: an
	// election in between (under -race on a busy machine) ends the round
	// with ErrNotLeader and tells nothing of the bound.
	for range 50 {
		var err error
		var g *leaseGrant
		li := c.onSteadyLeader(func(li int) {
			err = c.nodes[li].leaseRound()
			g = c.nodes[li].lease.Load()
		})
		l := c.nodes[li]
		require.NoError(t, err)
		require.NotNil(t, g)
		end := l.opened.Add(time.Duration(g.until))
		bound := 0
		for i, f := range c.nodes {
			if i == li {
				continue
			}
			if !end.After(f.rn.raft.LastContact().Add(f.rn.heartbeat)) {
				bound++
			}
		}
		require.GreaterOrEqual(t, bound, 1, "the lease ends %v after every follower may vote", time.Until(end))
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNode_ReadyOnlyInItsTerm checks that a leader counts as ready only
// in the term in which it applied its barrier: raft keeps only the
// latest leadership notification, so one that lost and regained
// leadership may not have seen the loss. A Leader read on it waits for
// the barrier of its term (until WriteTimeout here: the test holds the
// barrier back), and then answers that there is no leader yet.
func TestNode_ReadyOnlyInItsTerm(t *testing.T) {
	c := newDBClusterLease(t, "", true, 3, nil)
	// The checks count only if the leader kept its role and term through
	// them (under -race on a busy machine an election may come in
	// between): else they run again on the new leader.
	var ready, before, lease bool
	var errBefore, errAfter error
	c.onSteadyLeader(func(li int) {
		l := c.nodes[li]
		ready = l.isReady()
		term := l.readyTerm.Load()
		// As if the barrier ran in the term before; put back unless a
		// new barrier has run meanwhile.
		l.readyTerm.CompareAndSwap(term, term-1)
		before, lease = l.isReady(), l.leaseValid()
		_, errBefore = l.Get("k", Leader)
		l.readyTerm.CompareAndSwap(term-1, term)
		_, errAfter = l.Get("k", Leader)
	})
	require.True(t, ready)
	require.False(t, before)
	require.False(t, lease)
	require.ErrorIs(t, errBefore, ErrNoLeader, "a Leader read before the barrier of the leader's term")
	require.NotErrorIs(t, errBefore, ErrNotLeader, "a leader names itself")
	require.ErrorIs(t, errAfter, engine.ErrNotFound)
}

// TestLease_GrantKeepsNewer checks that a round which ends late (it began
// in an earlier term, or before a change of the voters) never replaces
// the lease of a later one, which leaseValid would take.
func TestLease_GrantKeepsNewer(t *testing.T) {
	var n Node
	want := func(term, voters uint64, until int64) {
		t.Helper()
		g := n.lease.Load()
		require.Equal(t, leaseGrant{term: term, voters: voters, until: until}, *g)
	}
	n.grant(5, 2, 100)
	want(5, 2, 100)
	n.grant(5, 0, 200) // began before the change of the voters
	want(5, 2, 100)
	n.grant(4, 2, 300) // began in the term before
	want(5, 2, 100)
	n.grant(5, 2, 50) // shorter
	want(5, 2, 100)
	n.grant(5, 2, 150)
	want(5, 2, 150)
	n.grant(5, 4, 10)
	want(5, 4, 10)
	n.grant(6, 0, 5)
	want(6, 0, 5)
}
