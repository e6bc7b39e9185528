package cluster

import (
	"flag"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

var (
	rounds = flag.Int("cluster.rounds", 2, "rounds of each fault in the cluster fault tests")
	seed   = flag.Uint64("cluster.seed", 0, "seed of the cluster fault tests; 0 picks one")
)

func testRand(t *testing.T) *rand.Rand {
	s := *seed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -cluster.seed=%d)", s, s)
	return rand.New(rand.NewPCG(s, s))
}

// TestFault_LeaderKillLosesNoAcknowledgedWrite kills the leader while
// writers write through every node, restarts it, and checks that every
// acknowledged write is on every node and every refused one on none.
func TestFault_LeaderKillLosesNoAcknowledgedWrite(t *testing.T) {
	forEachStore(t, testFaultLeaderKillLosesNoAcknowledgedWrite)
}

func testFaultLeaderKillLosesNoAcknowledgedWrite(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(4, w, c.anyNode, stop)
	var ttls atomic.Int64
	tg := ttlWriters(1, c.anyNode, stop, &ttls)
	for range *rounds {
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		l := c.leader()
		c.kill(l)
		c.leader()
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		c.restart(l)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	tg.Wait()
	w.settle(t, c)
	c.expireAll(&ttls)
}

// TestFault_LeaderPartitionedIntoMinority cuts the leader off while
// writers still write to it: what it acknowledges meanwhile must survive,
// and its speculative writes must not.
func TestFault_LeaderPartitionedIntoMinority(t *testing.T) {
	forEachStore(t, testFaultLeaderPartitionedIntoMinority)
}

func testFaultLeaderPartitionedIntoMinority(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	for range *rounds {
		l := c.leader()
		w := newWriteLog()
		stop := make(chan struct{})
		// Two writers on the old leader, one on a follower.
		f := (l + 1) % 3
		wg := writers(2, w, func() *Node { return c.node(l) }, stop)
		wg2 := writers(1, w, func() *Node { return c.node(f) }, stop)
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
		c.net.Isolate(l)
		c.leader(l)
		time.Sleep(time.Duration(200+rng.IntN(300)) * time.Millisecond)
		c.net.Isolate(l) // cut again whatever was dialed meanwhile
		c.net.Heal()
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		wg2.Wait()
		w.settle(t, c)
	}
}

// TestFault_RollingRestartsAndLossyLinks restarts every node in turn,
// followers and leader alike, while writers write and some links delay
// or swallow traffic one way: no acknowledged write is lost, no refused
// one appears, and the nodes end with the same state.
func TestFault_RollingRestartsAndLossyLinks(t *testing.T) {
	forEachStore(t, testFaultRollingRestartsAndLossyLinks)
}

func testFaultRollingRestartsAndLossyLinks(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	for i := range c.nodes {
		// Clocks each up to 0.5 s off, up to 1 s apart: expiry must
		// not depend on them.
		c.clockSkew[i].Store(int64(rng.IntN(1001)-500) * int64(time.Millisecond))
	}
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(3, w, c.anyNode, stop)
	var ttls atomic.Int64
	tg := ttlWriters(1, c.anyNode, stop, &ttls)
	for range *rounds {
		for i := range c.nodes {
			// A one-way fault on a random link, for a while.
			a, b := rng.IntN(3), rng.IntN(3)
			if a != b {
				if rng.IntN(2) == 0 {
					c.net.Link(a, b).SetDelay(time.Duration(rng.IntN(50)) * time.Millisecond)
				} else {
					c.net.Link(a, b).SetDrop(true)
				}
			}
			time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
			c.kill(i)
			time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
			c.restart(i)
			c.net.Heal()
			c.leader()
		}
	}
	close(stop)
	wg.Wait()
	tg.Wait()
	w.settle(t, c)
	c.expireAll(&ttls)
}
