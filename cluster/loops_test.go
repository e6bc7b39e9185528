package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// anyNode returns a random running node.
func (c *dbCluster) anyNode() *Node {
	for {
		if n := c.node(rand.IntN(len(c.nodes))); n != nil {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// add opens node i and registers it once it is open, without holding the
// lock meanwhile, so that writers go on while a newcomer joins.
func (c *dbCluster) add(i int) {
	c.t.Helper()
	n := c.open(i)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i] = n
}

// requireTyped checks that every write that failed failed with one of
// the cluster's errors, which say whether it may have committed.
func (w *writeLog) requireTyped(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, err := range w.unknown {
		require.True(t, errors.Is(err, ErrUncertain) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrClosed),
			"write %s failed with an untyped error: %v", k, err)
	}
}

// TestFault_JoinAndRemoveUnderLoad changes the membership while writers
// write through random nodes: each round a node joins with a fresh
// directory and a random member is removed, in a random order, by
// leaving, by being removed while it runs, or by being removed after it
// died; the leader is as likely a victim as any. A majority of the voters
// stays up throughout. No acknowledged write is lost, no refused one
// appears, the members end with the same state, and streams resumed on
// random nodes join into exactly the committed history.
func TestFault_JoinAndRemoveUnderLoad(t *testing.T) {
	rng := testRand(t)
	c := newDBCluster(t, 3, nil, *rounds)
	members := []int{0, 1, 2}
	next := 3
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(3, w, c.anyNode, stop)
	ss := startStreams(c, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	join := func() {
		// Join through one random member, leader or not.
		c.join = []string{c.peers[members[rng.IntN(len(members))]].Addr}
		start := time.Now()
		c.add(next)
		t.Logf("%s joined through %s in %v", c.peers[next].ID, c.join[0], time.Since(start).Round(time.Millisecond))
		members = append(members, next)
		next++
	}
	remove := func() {
		v := members[rng.IntN(len(members))]
		members = slices.DeleteFunc(members, func(i int) bool { return i == v })
		other := members[rng.IntN(len(members))]
		id := c.peers[v].ID
		switch how := rng.IntN(3); how {
		case 0:
			t.Logf("%s leaves (leader: %v)", id, c.node(v).IsLeader())
			require.NoError(t, c.node(v).Leave(ctx))
			c.kill(v)
		case 1:
			t.Logf("%s removed by %s while it runs (leader: %v)", id, c.peers[other].ID, c.node(v).IsLeader())
			require.NoError(t, c.node(other).RemoveServer(ctx, id))
			c.kill(v)
		default:
			t.Logf("%s dies, then %s removes it (leader: %v)", id, c.peers[other].ID, c.node(v).IsLeader())
			c.kill(v)
			require.NoError(t, c.node(other).RemoveServer(ctx, id))
		}
	}
	for range *rounds {
		time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			join()
			remove()
		} else {
			remove()
			join()
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	l := c.leader()
	var want []string
	for _, i := range members {
		want = append(want, c.peers[i].ID)
	}
	require.Eventually(t, func() bool {
		var got []string
		for _, s := range c.node(l).Status().Servers {
			got = append(got, s.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		return slices.Equal(want, got)
	}, 10*time.Second, 10*time.Millisecond, "the configuration is the members %v", want)
	final := c.converged()
	w.check(t, c)
	w.requireTyped(t)
	require.NotEmpty(t, w.acked)
	ss.check(t, w, final, engine.ErrCompacted)
	t.Logf("acknowledged %d, refused %d, uncertain %d %v", len(w.acked), len(w.refused), len(w.unknown), w.summary())
}

// summary counts the failed writes by the error they failed with.
func (w *writeLog) summary() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]int{}
	for _, err := range w.refused {
		m[errClass(err)]++
	}
	for _, err := range w.unknown {
		m[errClass(err)]++
	}
	return m
}

func errClass(err error) string {
	for _, e := range []error{ErrUncertain, ErrNotCommitted, ErrNotLeader, ErrNoLeader, ErrClosed} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
