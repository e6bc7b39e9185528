package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/client"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/cluster/clustertest"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// testCluster is three cluster nodes over clustertest's proxies, each
// served by an adapter at /kv/ of a test server of its own. Restarting a
// node's adapter closes its WebSockets; killing a node stops the node and
// its adapter, as a crash would, and dials to it fail.
type testCluster struct {
	t     *testing.T
	net   *clustertest.Net
	nodes []*cluster.Node
	urls  []string

	mu sync.Mutex
	as []*adapter.Adapter // guarded by mu; nil once the node is killed
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	const n = 3
	nt, err := clustertest.New(n)
	require.NoError(t, err)
	tc := &testCluster{t: t, net: nt, as: make([]*adapter.Adapter, n)}
	var peers []cluster.Peer
	for i := range n {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("n%d", i), Addr: nt.Addr(i)})
	}
	dir := t.TempDir()
	var srvs []*httptest.Server
	t.Cleanup(func() {
		for i := range tc.as {
			tc.shutdown(i)
		}
		for _, srv := range srvs {
			srv.Close()
		}
		for _, nd := range tc.nodes {
			if nd != nil {
				require.NoError(t, nd.Close())
			}
		}
		require.NoError(t, nt.Close())
	})
	for i := range n {
		ln, err := nt.Listener(i)
		require.NoError(t, err)
		nd, err := cluster.Open(filepath.Join(dir, peers[i].ID), &cluster.Options{
			NodeID: peers[i].ID, RaftAddr: peers[i].Addr, Peers: peers,
			Profile: cluster.ProfileLAN, Listener: ln, Dial: nt.Dialer(i), WriteTimeout: 5 * time.Second,
		})
		require.NoError(t, err)
		tc.nodes = append(tc.nodes, nd)
		tc.as[i] = tc.newAdapter(i)
		mux := http.NewServeMux()
		mux.Handle("/kv/", http.StripPrefix("/kv", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tc.mu.Lock()
			a := tc.as[i]
			tc.mu.Unlock()
			if a == nil {
				http.Error(w, "node down", http.StatusServiceUnavailable)
				return
			}
			a.ServeHTTP(w, r)
		})))
		srv := httptest.NewServer(mux)
		srvs = append(srvs, srv)
		tc.urls = append(tc.urls, srv.URL+"/kv")
	}
	return tc
}

func (tc *testCluster) newAdapter(i int) *adapter.Adapter {
	a, err := adapter.New(tc.nodes[i].With(), &adapter.Options{APIKeys: []string{apiKey}})
	require.NoError(tc.t, err)
	return a
}

// shutdown takes node i's adapter out of service, closing its
// connections.
func (tc *testCluster) shutdown(i int) {
	tc.mu.Lock()
	a := tc.as[i]
	tc.as[i] = nil
	tc.mu.Unlock()
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(tc.t, a.Shutdown(ctx))
}

// restartAdapter closes node i's connections and serves it anew.
func (tc *testCluster) restartAdapter(i int) {
	tc.shutdown(i)
	a := tc.newAdapter(i)
	tc.mu.Lock()
	tc.as[i] = a
	tc.mu.Unlock()
}

// connections counts the WebSockets node i's adapter serves.
func (tc *testCluster) connections(i int) int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.as[i].Stats().Connections
}

// kill stops node i and its adapter.
func (tc *testCluster) kill(i int) {
	require.NoError(tc.t, tc.nodes[i].Close())
	tc.shutdown(i)
	tc.nodes[i] = nil
}

// leader waits for a leader among the running nodes and returns it.
func (tc *testCluster) leader() int {
	tc.t.Helper()
	l := -1
	require.Eventually(tc.t, func() bool {
		for i, nd := range tc.nodes {
			if nd != nil && nd.IsLeader() {
				l = i
				return true
			}
		}
		return false
	}, 15*time.Second, 5*time.Millisecond, "no leader")
	return l
}

// caughtUp waits until every node serves stale reads: each has caught
// up with the leader since it started.
func (tc *testCluster) caughtUp() {
	tc.t.Helper()
	for _, nd := range tc.nodes {
		require.Eventually(tc.t, func() bool {
			_, err := nd.Get("x", cluster.Read(cluster.Stale))
			return !errors.Is(err, cluster.ErrBehind)
		}, 10*time.Second, time.Millisecond, "a node never caught up")
	}
}

// dialMoving dials the leader l with a client that moves to f (l + 1)
// when its connection drops, once every node has caught up.
func (tc *testCluster) dialMoving() (c *client.Client, l, f int) {
	tc.t.Helper()
	l = tc.leader()
	f = (l + 1) % 3
	tc.caughtUp()
	c, err := client.Dial(ctxT(tc.t), tc.urls[l], &client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, URLs: []string{tc.urls[f]}})
	require.NoError(tc.t, err)
	tc.t.Cleanup(func() { c.Close() })
	return c, l, f
}

// readAfter reads key through c until a read succeeds: a read that fails
// because the connection dropped or the node cannot serve it yet (behind
// the session, or without a leader) is tried again, as a caller would.
// A missing key is an item at revision 0.
func readAfter(t *testing.T, c *client.Client, key string) client.Item {
	t.Helper()
	ctx := ctxT(t)
	for {
		it, err := c.Get(ctx, key)
		if errors.Is(err, client.ErrConnectionLost) || errors.Is(err, client.ErrUnavailable) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if errors.Is(err, engine.ErrNotFound) {
			return client.Item{Key: key} // revision 0: older than any write
		}
		require.NoError(t, err)
		return it
	}
}

// TestCluster_SessionFollowsTheClient writes through the leader with a
// client that knows every node, then closes the leader's connections: the
// client moves to the next node, a follower held behind by slow links,
// and its first read there sees the write (the node waits for the
// client's session). A client that only ever read on that follower is
// shown to read older values meanwhile, so the check could fail. At the
// end the leader is killed, and the client's read on a survivor still
// sees its last write.
func TestCluster_SessionFollowsTheClient(t *testing.T) {
	tc := newTestCluster(t)
	l := tc.leader()
	f := (l + 1) % 3
	tc.caughtUp()
	for _, lk := range []*clustertest.Link{tc.net.Link(l, f), tc.net.Link(f, l)} {
		lk.SetDelay(50 * time.Millisecond)
	}
	other := (l + 2) % 3
	ctx := ctxT(t)
	opts := &client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		URLs: []string{tc.urls[f], tc.urls[other]}}
	c, err := client.Dial(ctx, tc.urls[l], opts)
	require.NoError(t, err)
	defer c.Close()
	plain, err := client.Dial(ctx, tc.urls[f], &client.Options{APIKey: apiKey})
	require.NoError(t, err)
	defer plain.Close()

	const rounds = 5
	older := 0
	for k := range rounds {
		v := fmt.Sprintf("v%d", k)
		rev, err := c.Set(ctx, "k", v, nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, c.SessionRevision(), rev)
		if it, err := plain.Get(ctx, "k"); err != nil || it.Revision < rev {
			older++ // the follower has not applied the write yet
		}
		tc.restartAdapter(l) // the client's connection drops: it moves to f
		it := readAfter(t, c, "k")
		require.Equal(t, v, it.Value, "round %d: the first read after the move", k)
		require.Equal(t, rev, it.Revision)
		require.Zero(t, tc.connections(l)+tc.connections(other), "the client is on the follower")
		// Back to the leader: close f's connections, then the third node's.
		tc.restartAdapter(f)
		readAfter(t, c, "k")
		tc.restartAdapter(other)
		readAfter(t, c, "k")
		require.Equal(t, 1, tc.connections(l), "the client is back on the leader")
	}
	t.Logf("a client without the session read an older value than the write just made %d/%d times", older, rounds)
	require.NotZero(t, older, "the follower was never behind: the reads after each move could not fail")

	// A crash of the leader: the client fails over to a survivor, which
	// may have to wait for a new leader before it holds the write.
	rev, err := c.Set(ctx, "k", "last", nil)
	require.NoError(t, err)
	tc.kill(l)
	it := readAfter(t, c, "k")
	require.Equal(t, "last", it.Value)
	require.Equal(t, rev, it.Revision)
}

// TestDial_TriesTheOtherURLs connects through Options.URLs when the first
// URL does not answer, refuses a bad one at Dial, and raises the session
// revision by replies and notifications alike.
func TestDial_TriesTheOtherURLs(t *testing.T) {
	s := newServer(t, nil)
	ctx := ctxT(t)
	_, err := client.Dial(ctx, s.url, &client.Options{APIKey: apiKey, URLs: []string{"ftp://x"}})
	require.ErrorContains(t, err, "want http, https, ws or wss")

	c, err := client.Dial(ctx, "http://127.0.0.1:1/kv", &client.Options{APIKey: apiKey, URLs: []string{s.url}})
	require.NoError(t, err)
	defer c.Close()
	require.Zero(t, c.SessionRevision())
	rev, err := c.Set(ctx, "a", "1", nil)
	require.NoError(t, err)
	require.Equal(t, rev, c.SessionRevision())

	sub, err := c.Subscribe(ctx, []string{"b"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	it, err := s.db.Set("b", "2", nil) // not through c
	require.NoError(t, err)
	_, err = sub.Next(ctx)
	require.NoError(t, err)
	require.Equal(t, it.Revision, c.SessionRevision(), "a notification")

	// The first URL's credentials are refused: the others are not tried.
	_, err = client.Dial(ctx, s.url, &client.Options{APIKey: "wrong", URLs: []string{"http://127.0.0.1:1/kv"}})
	require.ErrorIs(t, err, client.ErrForbidden)
}

// TestCluster_SubscriptionResumesOffALeaderlessNode subscribes through a
// follower with two clients: one that knows the other nodes, one that
// knows only the follower. The follower is cut off from the others while
// writes go on through the leader, until it has had no leader long enough
// to end its subscriptions (cluster.ErrNoLeader, 503 no_leader): the
// first client resumes on another node at once, the second on the
// follower once it is back with the cluster. Each delivers every
// committed change exactly once, in order.
func TestCluster_SubscriptionResumesOffALeaderlessNode(t *testing.T) {
	tc := newTestCluster(t)
	l := tc.leader()
	f, other := (l+1)%3, (l+2)%3
	ctx := ctxT(t)
	opts := client.Options{APIKey: apiKey, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	solo, err := client.Dial(ctx, tc.urls[f], &opts)
	require.NoError(t, err)
	defer solo.Close()
	opts.URLs = []string{tc.urls[other], tc.urls[l]}
	moving, err := client.Dial(ctx, tc.urls[f], &opts)
	require.NoError(t, err)
	defer moving.Close()
	var subs []*client.Subscription
	for _, c := range []*client.Client{moving, solo} {
		sub, err := c.Subscribe(ctx, []string{"k:*"}, nil)
		require.NoError(t, err)
		defer sub.Close()
		subs = append(subs, sub)
	}
	start := subs[0].Revision()
	require.Equal(t, start, subs[1].Revision())
	require.Equal(t, 2, tc.connections(f))

	// write sets a key through whichever node leads, until it is
	// acknowledged (a write whose outcome is unknown is written again:
	// what committed is read back from a node's history at the end).
	var acked []engine.Item
	write := func(i int) {
		t.Helper()
		for {
			nd := tc.nodes[tc.leader()]
			it, err := nd.Set(fmt.Sprintf("k:%d", i%5), fmt.Sprint(i), nil)
			if err == nil {
				acked = append(acked, it)
				return
			}
			require.NoError(t, ctx.Err(), "last write error: %v", err)
			time.Sleep(5 * time.Millisecond)
		}
	}
	n := 0
	for range 10 {
		write(n)
		n++
	}

	tc.net.Isolate(f)
	require.Eventually(t, func() bool {
		write(n)
		n++
		return tc.connections(f) == 1 && tc.connections(l)+tc.connections(other) == 1
	}, 15*time.Second, 20*time.Millisecond, "the client that knows the other nodes never left the follower")
	_, addr := tc.nodes[f].Leader()
	require.Empty(t, addr, "the follower cut off has no leader")
	for range 10 {
		write(n)
		n++
	}
	tc.net.Heal()
	require.Eventually(t, func() bool {
		_, addr := tc.nodes[f].Leader()
		return addr != ""
	}, 15*time.Second, 10*time.Millisecond, "the follower never found the leader again")
	for range 10 {
		write(n)
		n++
	}
	last := acked[len(acked)-1].Revision

	// What committed, from the history of a node.
	ref, err := tc.nodes[tc.leader()].Subscribe([]string{"k:*"}, &engine.SubscribeOptions{From: engine.Position{Revision: start + 1}})
	require.NoError(t, err)
	defer ref.Close()
	var want []client.Event
	for len(want) == 0 || want[len(want)-1].Revision < last {
		select {
		case ev := <-ref.Events():
			want = append(want, client.Event{Key: ev.Key, Value: ev.Value, Revision: ev.Revision})
		case <-ctx.Done():
			t.Fatalf("the history did not reach the last write (%d): %d events, %v", last, len(want), ref.Err())
		}
	}
	for _, it := range acked {
		require.Contains(t, want, client.Event{Key: it.Key, Value: it.Value, Revision: it.Revision}, "an acknowledged write")
	}

	for i, sub := range subs {
		require.Equal(t, want, untimed(collect(t, sub, len(want))), "subscriber %d: every committed change, once, in order", i)
		require.Nil(t, sub.Err())
	}
	require.Equal(t, 1, tc.connections(f), "the client that knows only the follower stayed on it")
}
