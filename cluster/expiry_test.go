package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/stretchr/testify/require"
)

// nextOf returns the next event of s, within 10 s.
func nextOf(t *testing.T, s *engine.Subscription) pubsub.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	require.NoError(t, err)
	return ev
}

// watchFollower starts 3 nodes with eo and subscribes to pattern on a
// follower: it returns the cluster, the leader's index, the follower's,
// and the subscription, closed when the test ends.
func watchFollower(t *testing.T, eo *engine.Options, pattern string) (c *dbCluster, l, f int, s *engine.Subscription) {
	t.Helper()
	c = newDBCluster(t, 3, eo)
	l = c.leader()
	f = (l + 1) % 3
	s, err := c.nodes[f].Subscribe([]string{pattern}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, l, f, s
}

// TestCluster_LeaderSweepsExpiriesForAll sets a key with a TTL: only the
// leader sweeps, and the expiry reaches every node as a change through
// the log, at the same revision.
func TestCluster_LeaderSweepsExpiriesForAll(t *testing.T) {
	c, _, f, s := watchFollower(t, &engine.Options{SweepInterval: 20 * time.Millisecond}, "ttl")
	it, err := c.nodes[f].Set("ttl", "v", &engine.SetOptions{TTL: 100 * time.Millisecond})
	require.NoError(t, err)
	ev := nextOf(t, s)
	require.Equal(t, it.Revision, ev.Revision)
	ev = nextOf(t, s)
	require.Equal(t, pubsub.Expire, ev.Type, "the expiry arrives as a change on a follower")
	require.Greater(t, ev.Revision, it.Revision)
	rev := c.converged()
	require.GreaterOrEqual(t, rev, ev.Revision)
}

// TestCluster_ExpiryIsTheSameOnEveryNode sets a key with a TTL while one
// follower's clock is 2 s behind the leader's, the other's 2 s ahead, and
// the sweeps are held. Once the key's time has come, every node still
// holds it, alike at one revision, and writes on the leader find it
// there, until the sweep's expiry commits; then no node has it. Reads
// that judged expiry by the clock of the node that serves them would
// answer differently on the three.
func TestCluster_ExpiryIsTheSameOnEveryNode(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	c.clockSkew[(l+1)%3].Store(int64(-2 * time.Second))
	c.clockSkew[(l+2)%3].Store(int64(2 * time.Second))
	c.sweepHeld.Store(true)
	it, err := c.nodes[(l+1)%3].Set("ttl", "v", &engine.SetOptions{TTL: 300 * time.Millisecond})
	require.NoError(t, err)
	time.Sleep(time.Until(it.ExpiresAt) + 100*time.Millisecond) // the leader's clock is the real one

	rev := c.converged() // the same state on every node, the key included
	require.Equal(t, it.Revision, rev)
	for i, n := range c.nodes {
		got, err := n.Get("ttl")
		require.NoError(t, err, "node %d", i)
		require.True(t, it.ExpiresAt.Equal(got.ExpiresAt), "node %d", i)
		got.ExpiresAt = it.ExpiresAt
		require.Equal(t, it, got, "node %d", i)
	}
	_, err = c.nodes[l].PutIfAbsent("ttl", "w", nil)
	require.ErrorIs(t, err, engine.ErrConflict, "a write finds what reads find")

	c.sweepHeld.Store(false)
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if n.Revision() == it.Revision {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
	rev = c.converged()
	require.Greater(t, rev, it.Revision, "the expiry commits")
	for i, n := range c.nodes {
		_, err := n.Get("ttl")
		require.ErrorIs(t, err, engine.ErrNotFound, "node %d", i)
	}
}

// TestCluster_SweepsWhenAKeyIsDue: with an hour between sweeps, the
// leader still expires a key as soon as it is due, and not before: the
// write of the key wakes the sweep, which was waiting out the hour.
func TestCluster_SweepsWhenAKeyIsDue(t *testing.T) {
	c, _, f, s := watchFollower(t, &engine.Options{SweepInterval: time.Hour}, "ttl")
	it, err := c.nodes[f].Set("ttl", "v", &engine.SetOptions{TTL: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, pubsub.Put, nextOf(t, s).Type)
	ev := nextOf(t, s)
	t.Logf("the follower learned of the expiry %v after the key was due", time.Since(it.ExpiresAt))
	require.Equal(t, "ttl", ev.Key)
	require.Equal(t, pubsub.Expire, ev.Type)
	require.False(t, ev.Time.Before(it.ExpiresAt), "expired at %v, due at %v", ev.Time, it.ExpiresAt)
}

// TestCluster_NewLeaderSweepsWhatIsDue: a key due after its leader died
// is expired by the next leader when due, with an hour between sweeps.
func TestCluster_NewLeaderSweepsWhatIsDue(t *testing.T) {
	c, l, f, s := watchFollower(t, &engine.Options{SweepInterval: time.Hour}, "ttl")
	it, err := c.nodes[f].Set("ttl", "v", &engine.SetOptions{TTL: 2 * time.Second})
	require.NoError(t, err)
	require.Equal(t, pubsub.Put, nextOf(t, s).Type)
	c.kill(l)
	require.True(t, time.Now().Before(it.ExpiresAt), "the old leader died before the key was due")
	c.leader(l)
	ev := nextOf(t, s)
	require.Equal(t, pubsub.Expire, ev.Type)
	require.False(t, ev.Time.Before(it.ExpiresAt), "expired at %v, due at %v", ev.Time, it.ExpiresAt)
}
