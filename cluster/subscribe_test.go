package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// follower of a stream that resumes on a random running node whenever
// its stream ends.
type resumer struct {
	c    *dbCluster
	mu   sync.Mutex
	revs []int64
	keys []string
	ends []error
}

func (r *resumer) run(ctx context.Context) {
	var from int64
	for ctx.Err() == nil {
		n := r.c.node(rand.IntN(len(r.c.nodes)))
		if n == nil {
			continue
		}
		o := &engine.SubscribeOptions{FromRevision: from}
		if from == 0 {
			o = &engine.SubscribeOptions{From: pubsub.Position{Revision: 1}} // from the start
		}
		s, err := n.Subscribe([]string{"*"}, o)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.mu.Lock()
					r.ends = append(r.ends, err)
					r.mu.Unlock()
				}
				break
			}
			r.mu.Lock()
			r.revs = append(r.revs, ev.Revision)
			r.keys = append(r.keys, ev.Key)
			r.mu.Unlock()
			from = ev.Revision // one event per transaction here
		}
		s.Close()
	}
}

func (r *resumer) last() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.revs) == 0 {
		return 0
	}
	return r.revs[len(r.revs)-1]
}

// TestFault_SubscribersResumeOnAnyNode follows the changes from every
// node while leaders are killed, resuming each stream on a random node
// when it ends: joined, the streams are exactly the committed history.
func TestFault_SubscribersResumeOnAnyNode(t *testing.T) {
	forEachStore(t, testFaultSubscribersResumeOnAnyNode)
}

func testFaultSubscribersResumeOnAnyNode(t *testing.T, store LogStore) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	w := newWriteLog()
	stop := make(chan struct{})
	wg := writers(2, w, c.anyNode, stop)
	ss := startStreams(c, 3)
	for range *rounds {
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		l := c.leader()
		c.kill(l)
		c.leader()
		time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
		c.restart(l)
	}
	close(stop)
	wg.Wait()
	c.leader()
	ss.check(t, w, c.converged())
}

// streams are resumers following the changes from random nodes.
type streams struct {
	rs     []*resumer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startStreams(c *dbCluster, k int) *streams {
	ctx, cancel := context.WithCancel(context.Background())
	s := &streams{cancel: cancel}
	for range k {
		r := &resumer{c: c}
		s.rs = append(s.rs, r)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.run(ctx)
		}()
	}
	return s
}

// check waits for every stream to reach final, stops them, and checks
// that each, joined across its resumptions, is exactly the committed
// history: every revision once, in order, each acknowledged write at its
// revision. A stream may have ended only with ErrNoLeader, pubsub.ErrClosed
// or one of also.
func (s *streams) check(t testing.TB, w *writeLog, final int64, also ...error) {
	t.Helper()
	for _, r := range s.rs {
		require.Eventually(t, func() bool { return r.last() == final }, 20*time.Second, 5*time.Millisecond,
			"the stream reaches the final revision %d", final)
	}
	s.cancel()
	s.wg.Wait()
	ackedAt := map[int64]string{}
	w.mu.Lock()
	for k, rev := range w.acked {
		ackedAt[rev] = k
	}
	w.mu.Unlock()
	for i, r := range s.rs {
		require.Len(t, r.revs, int(final), "stream %d: one event per revision", i)
		for j, rev := range r.revs {
			require.Equal(t, int64(j+1), rev, "stream %d: no gap, no duplicate, in order", i)
			if k, ok := ackedAt[rev]; ok {
				require.Equal(t, k, r.keys[j], "stream %d at revision %d", i, rev)
			}
		}
		for _, err := range r.ends {
			ok := errors.Is(err, ErrNoLeader) || errors.Is(err, pubsub.ErrClosed)
			for _, e := range also {
				ok = ok || errors.Is(err, e)
			}
			require.True(t, ok, "stream %d ended with %v", i, err)
		}
		t.Logf("stream %d resumed %d times", i, len(r.ends))
	}
}

func TestSubscribe_EndsWithoutLeaderAndWaitsForRevision(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	it, err := c.nodes[l].Set("k", "v", nil)
	require.NoError(t, err)

	// A revision the node has applied resumes at once; one far ahead
	// fails after the wait with ErrBehind.
	s, err := c.nodes[f].Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.Position{Revision: 1}})
	require.NoError(t, err)
	ev, err := s.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, it.Revision, ev.Revision)
	// A position inside the next revision is waited for too: the engine
	// would refuse it, ahead of what the node has made.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = c.nodes[l].Set("k2", "v", nil)
	}()
	s2, err := c.nodes[f].Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.Position{Revision: it.Revision + 1, Index: 1}})
	require.NoError(t, err, "a position inside a revision on its way")
	require.NoError(t, s2.Close())
	ev, err = s.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, "k2", ev.Key)
	start := time.Now()
	_, err = c.nodes[f].Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: it.Revision + 100})
	require.ErrorIs(t, err, ErrBehind)
	require.GreaterOrEqual(t, time.Since(start), subscribeWait)

	// Cut off, the follower loses its leader and ends the stream.
	c.net.Isolate(f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, ErrNoLeader)
	_, err = c.nodes[f].Subscribe([]string{"*"}, nil)
	require.ErrorIs(t, err, ErrNoLeader)
	c.net.Heal()
}

// A node that has a leader subscribes, though its watch has not yet
// seen the leader come after a time without one: Subscribe refused with
// ErrNoLeader on the leader itself, just elected after its founders took
// long to start.
func TestSubscribe_WithALeaderNotYetWatched(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	for _, i := range []int{c.leader(), (c.leader() + 1) % 3} {
		require.Eventually(t, func() bool { _, addr := c.nodes[i].Leader(); return addr != "" },
			10*time.Second, time.Millisecond, "n%d knows the leader", i)
		c.nodes[i].noLeaderSince.Store(time.Now().Add(-time.Hour).UnixNano())
		s, err := c.nodes[i].Subscribe([]string{"*"}, nil)
		require.NoError(t, err, "n%d", i)
		require.NoError(t, s.Close())
	}
}

// TestSubscribe_InitialWaitsForCatchUp: a restarted node refuses stale
// reads until it has caught up with the leader, and the Initial items of
// a subscription, a read of its state, too: served at once, they missed
// a key the cluster had held all along.
func TestSubscribe_InitialWaitsForCatchUp(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	it, err := c.node(l).Set("k", "v", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.node(f).Revision() >= it.Revision }, 10*time.Second, time.Millisecond)
	c.kill(f)
	c.net.Isolate(f) // it comes back cut off from the others
	c.restart(f)
	n := c.node(f)
	_, err = n.Get("k", Read(Stale))
	require.ErrorIs(t, err, ErrBehind, "a stale read on a node that has not caught up")
	_, err = n.Subscribe([]string{"k"}, &engine.SubscribeOptions{Initial: true})
	require.ErrorIs(t, err, ErrBehind, "Initial items on a node that has not caught up")

	c.net.Heal()
	require.Eventually(t, n.served.Load, 20*time.Second, time.Millisecond, "the node caught up")
	sub, err := n.Subscribe([]string{"k"}, &engine.SubscribeOptions{Initial: true})
	require.NoError(t, err)
	defer sub.Close()
	require.Len(t, sub.Initial, 1)
	require.Equal(t, "v", sub.Initial[0].Value)
}
