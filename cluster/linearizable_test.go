package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/kvmodel"
	"github.com/stretchr/testify/require"
)

var linDump = flag.String("cluster.lindump", "", "file to write a history that is not linearizable to")

// linOutcome turns a call's error into its output; ok is false for a call
// that definitely did nothing, which the history leaves out.
func linOutcome(err error) (out kvmodel.Output, ok bool) {
	switch {
	case err == nil:
		return out, true
	case errors.Is(err, engine.ErrNotFound):
		out.Err = "notfound"
	case errors.Is(err, engine.ErrConflict):
		out.Err = "conflict"
	case errors.Is(err, engine.ErrNotInteger):
		out.Err = "notinteger"
	case errors.Is(err, ErrUncertain):
		out.Unknown = true
	case errors.Is(err, ErrNotCommitted), errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		// ErrNoLeader without ErrUncertain: the write never reached a
		// leader.
		return out, false
	default:
		out.Unknown = true
	}
	return out, true
}

// TestLinearizable_AcrossFailover runs clients that get, set,
// compare-and-swap, increment and delete a few keys through random nodes
// while the leader is killed and, later, cut off into a minority; it
// checks with porcupine that each key's history is linearizable, reads
// at the default (Linearizable) level included.
func TestLinearizable_AcrossFailover(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) { linearizableAcrossFailover(t, store, false, Linearizable) })
}

// TestLinearizable_LeaseReadsAcrossFailover is
// TestLinearizable_AcrossFailover with Options.LeaseReads: the leader
// serves linearizable reads under its lease, and must stop before a new
// leader can commit anything.
func TestLinearizable_LeaseReadsAcrossFailover(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) { linearizableAcrossFailover(t, store, true, Linearizable) })
}

// TestLinearizable_LeaderReadsAcrossFailover is
// TestLinearizable_AcrossFailover with reads at the Leader level, sent to
// whichever node leads at the time; a read refused with a
// *NotLeaderError observed nothing and is left out.
func TestLinearizable_LeaderReadsAcrossFailover(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) { linearizableAcrossFailover(t, store, false, Leader) })
}

// leaderNow returns the node that leads now, as far as it knows, or nil.
func (c *dbCluster) leaderNow() *Node {
	for i := range c.nodes {
		if n := c.node(i); n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

func linearizableAcrossFailover(t *testing.T, store LogStore, lease bool, level Consistency) {
	rng := testRand(t)
	c := newDBClusterLease(t, store, lease, 3, nil)
	c.leader()
	keys := []string{"a", "b", "c", "d", "e"}
	begin := time.Now()
	clock := func() int64 { return int64(time.Since(begin)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var leaderRefusals atomic.Int64
	var wg sync.WaitGroup
	const clients = 5
	ops := 60 * *rounds
	for cl := range clients {
		seed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(cl)))
			seen := map[string]int64{}
			for k := range ops {
				n := c.node(r.IntN(len(c.nodes)))
				if n == nil {
					continue
				}
				in := kvmodel.Input{Key: keys[r.IntN(len(keys))], Value: fmt.Sprintf("%d.%d", cl, k)}
				var out kvmodel.Output
				var err error
				call := clock()
				switch p := r.IntN(10); {
				case p < 4:
					in.Op = "get"
					if level == Leader {
						if l := c.leaderNow(); l != nil {
							n = l
						}
					}
					var it engine.Item
					it, err = n.Get(in.Key, level)
					out.Value, out.Rev = it.Value, it.Revision
					if errors.Is(err, ErrNotLeader) {
						leaderRefusals.Add(1)
					}
				case p < 6:
					in.Op = "set"
					var it engine.Item
					it, err = n.Set(in.Key, in.Value, nil)
					out.Rev = it.Revision
				case p < 8:
					in.Op = "cas"
					in.Rev = seen[in.Key] // the revision this client last saw, 0 if none
					var it engine.Item
					it, err = n.CompareAndSwap(in.Key, in.Rev, in.Value, nil)
					out.Rev = it.Revision
				case p < 9:
					in.Op, in.Delta = "incr", 1
					out.N, out.Rev, err = n.Increment(in.Key, in.Delta)
				default:
					in.Op = "del"
					out.Rev, err = n.Delete(in.Key)
				}
				ret := clock()
				o, ok := linOutcome(err)
				o.Value, o.Rev, o.N = out.Value, out.Rev, out.N
				if in.Op == "get" && err != nil && !errors.Is(err, engine.ErrNotFound) {
					continue // a read that answered nothing
				}
				if !ok {
					continue
				}
				if o.Unknown {
					ret = math.MaxInt64
				} else if o.Err == "" && in.Op != "del" {
					seen[in.Key] = o.Rev
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: o, Return: ret})
				mu.Unlock()
			}
		}()
	}
	// Faults while the clients run.
	time.Sleep(300 * time.Millisecond)
	l := c.leader()
	c.kill(l)
	c.leader()
	time.Sleep(300 * time.Millisecond)
	c.restart(l)
	l = c.leader()
	c.net.Isolate(l)
	c.leader(l)
	time.Sleep(300 * time.Millisecond)
	c.net.Isolate(l)
	c.net.Heal()
	wg.Wait()

	gets := 0
	for _, op := range history {
		if op.Input.(kvmodel.Input).Op == "get" {
			gets++
		}
	}
	require.NotZero(t, gets, "no read at %v observed anything", level)

	res, info := porcupine.CheckOperationsVerbose(kvmodel.Model, history, kvmodel.CheckBudget)
	if res != porcupine.Ok {
		for i, p := range info.PartialLinearizations() {
			t.Logf("partition %d: longest linearizable prefixes %v", i, p)
		}
		if *linDump != "" {
			f, err := os.Create(*linDump)
			require.NoError(t, err)
			for _, op := range history {
				fmt.Fprintf(f, "%d %d %d %+v %+v\n", op.ClientId, op.Call, op.Return, op.Input, op.Output)
			}
			f.Close()
		}
	}
	require.Equal(t, porcupine.Ok, res, "%d operations are not linearizable", len(history))
	t.Logf("%d operations (%d reads at %v), linearizable; %d reads refused by a node that no longer led", len(history), gets, level, leaderRefusals.Load())
}

// TestLinearizable_ReadIndexInOneTerm: a leader takes a read index, and
// then, stalled, loses leadership and wins it back before it confirms
// leadership: the index of its first term confirmed in its second could
// miss writes another leader made between, so it refuses (ErrNoLeader),
// and a read index taken and confirmed in one term is given. Both with
// and without lease reads.
func TestLinearizable_ReadIndexInOneTerm(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			c := newDBClusterLease(t, "", lease, 3, nil)
			for attempt := 0; ; attempt++ {
				require.Less(t, attempt, 3, "leadership kept moving")
				li := c.settle()
				l := c.node(li)
				var stalled atomic.Bool
				stall := func(i int) {
					if i != li || !stalled.CompareAndSwap(false, true) {
						return
					}
					// Away to another node, which writes, and back.
					x := (li + 1) % 3
					if l.TransferLeadership(context.Background(), c.peers[x].ID) != nil {
						return
					}
					if _, err := c.node(c.leader()).Set("k", "elsewhere", nil); err != nil {
						return
					}
					require.Eventually(t, func() bool {
						if l.isReady() {
							return true
						}
						if o := c.leader(); o != li {
							_ = c.node(o).TransferLeadership(context.Background(), c.peers[li].ID)
						}
						return false
					}, 30*time.Second, 10*time.Millisecond, "leadership never came back")
				}
				c.readStall.Store(&stall)
				term := l.rn.raft.CurrentTerm()
				_, err := l.leaderReadIndex()
				c.readStall.Store(nil)
				if !stalled.Load() || l.rn.raft.CurrentTerm() == term {
					continue // no stall, or it did not take leadership away: again
				}
				require.ErrorIs(t, err, ErrNoLeader, "a read index taken in term %d, confirmed in %d", term, l.rn.raft.CurrentTerm())

				// Without a stall, one term: given.
				var ri readIndex
				if !c.steady(li, "Leader", func() { ri, err = l.leaderReadIndex() }) {
					continue
				}
				require.NoError(t, err)
				require.Equal(t, l.Revision(), ri.rev)
				return
			}
		})
	}
}

// TestLinearizable_NoReadMissesWhatAnotherSaw: raft tells the followers
// of a commit while the leader may still be applying it, so a follower
// can apply an entry before the leader publishes it. A linearizable read
// on that follower may see the write; a linearizable read that begins
// after it ends, on the leader, must see it too. The leader's applying is
// held here while the nodes read, and the follower's read takes its read
// index either after the write committed or before (then it is held, and
// reads once it has applied the write). With and without lease reads.
func TestLinearizable_NoReadMissesWhatAnotherSaw(t *testing.T) {
	for _, lease := range []bool{false, true} {
		for _, index := range []string{"after", "before"} {
			t.Run(fmt.Sprintf("lease=%v/index=%s", lease, index), func(t *testing.T) {
				noReadMissesWhatAnotherSaw(t, lease, index == "before")
			})
		}
	}
}

func noReadMissesWhatAnotherSaw(t *testing.T, lease, indexFirst bool) {
	c := newDBClusterLease(t, "", lease, 3, nil)
	c.caughtUp()
	for attempt := 0; ; attempt++ {
		require.Less(t, attempt, 3, "leadership kept moving")
		li := c.settle()
		key := fmt.Sprintf("k%d", attempt)
		var problems []string
		// What a read on the leader tells holds only if it led in one
		// term throughout (an election under load would fail the reads
		// for another reason): else again.
		if c.steady(li, "Leader", func() { problems = readsAfterACommit(t, c, li, key, indexFirst) }) {
			require.Empty(t, problems)
			return
		}
	}
}

// readsAfterACommit runs one try of TestLinearizable_NoReadMissesWhatAnotherSaw
// on key, with node li leading, and returns what went wrong.
func readsAfterACommit(t *testing.T, c *dbCluster, li int, key string, indexFirst bool) (problems []string) {
	fi := (li + 1) % 3
	l, f := c.node(li), c.node(fi)
	type result struct {
		it  engine.Item
		err error
	}
	read := func(n *Node) <-chan result {
		ch := make(chan result, 1)
		go func() {
			it, err := n.Get(key)
			ch <- result{it, err}
		}()
		return ch
	}
	check := func(r result, what string) {
		switch {
		case r.err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", what, r.err))
		case r.it.Value != "v":
			problems = append(problems, fmt.Sprintf("%s: %q, not the write", what, r.it.Value))
		}
	}

	// With indexFirst, the follower's read takes its index and waits.
	var onFollower <-chan result
	indexed, goOn := make(chan struct{}), make(chan struct{})
	defer c.readHold.Store(nil)
	if indexFirst {
		var stalled atomic.Bool
		stall := func(i int) {
			if i == fi && stalled.CompareAndSwap(false, true) {
				close(indexed)
				<-goOn
			}
		}
		c.readHold.Store(&stall)
		onFollower = read(f)
		select {
		case <-indexed:
		case r := <-onFollower:
			return append(problems, fmt.Sprintf("the follower's read did not stall: %v", r.err))
		}
	}
	goOnce := sync.OnceFunc(func() { close(goOn) })
	defer goOnce()

	release := make(chan struct{})
	var held atomic.Bool
	hold := func(i int) {
		if i == li && held.CompareAndSwap(false, true) {
			<-release
		}
	}
	c.applyHold.Store(&hold)
	released := sync.OnceFunc(func() {
		c.applyHold.Store(nil)
		close(release)
	})
	defer released()
	written := make(chan error, 1)
	go func() {
		_, err := l.Set(key, "v", nil)
		written <- err
	}()
	defer func() {
		released()
		if err := <-written; err != nil {
			problems = append(problems, fmt.Sprintf("the write: %v", err))
		}
	}()
	require.Eventually(t, func() bool {
		it, err := f.Get(key, Stale)
		return err == nil && it.Value == "v"
	}, 10*time.Second, time.Millisecond, "the follower never applied the write")
	require.True(t, held.Load(), "the leader's applying was not held")

	if indexFirst {
		goOnce()
	} else {
		onFollower = read(f)
	}
	// Released, a stalled read reads at once: give it long enough not to
	// be taken for one that waits, on a busy machine.
	wait := 300 * time.Millisecond
	if indexFirst {
		wait = 10 * time.Second
	}
	select {
	case r := <-onFollower:
		check(r, "a linearizable read on the follower, which had applied the write")
		onLeader := read(l)
		select {
		case r := <-onLeader:
			check(r, "a read on the leader after a read on a follower that saw the write")
		case <-time.After(200 * time.Millisecond):
			released()
			check(<-onLeader, "a read on the leader, once it applied the write")
		}
	case <-time.After(wait):
		// The follower's read waits for the leader's read index, which
		// waits for the leader to apply what it has committed.
		if indexFirst {
			return append(problems, "the follower's read waited, with its index and the write applied")
		}
		released()
		check(<-onFollower, "a read on the follower, once the leader applied the write")
		check(<-read(l), "a read on the leader after one on the follower")
	}
	return problems
}

// TestLinearizable_UnansweredFollowerReadIsNoLeader: a follower whose
// requests to the leader go unanswered (its link drops every packet, the
// leader's heartbeats still reach it) ends a linearizable read with
// ErrNoLeader once its time is up, as for a node that knows no leader,
// and not with the network's timeout.
func TestLinearizable_UnansweredFollowerReadIsNoLeader(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.settle()
	f := (l + 1) % 3
	_, err := c.nodes[l].Set("k", "v", nil)
	require.NoError(t, err)
	c.net.Link(f, l).SetDrop(true)
	start := time.Now()
	_, err = c.nodes[f].Get("k")
	t.Logf("after %v: %v", time.Since(start), err)
	require.ErrorIs(t, err, ErrNoLeader)
}
