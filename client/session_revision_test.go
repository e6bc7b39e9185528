package client_test

import (
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestClient_NotFoundRaisesTheSession: the client reads a key on the
// leader and is told it is gone (a delete another client made); then its
// connection drops and it moves to a follower that has not applied the
// delete. The 404 was read at the delete's revision or later, and the
// client's session takes it (the reply's atRevision), so the follower
// waits for it: the deleted key does not come back. Before, a 404 carried
// no revision and the client noted only 200s.
func TestClient_NotFoundRaisesTheSession(t *testing.T) {
	tc := newTestCluster(t)
	c, l, f := tc.dialMoving()
	ctx := ctxT(t)

	rev, err := c.Set(ctx, "k", "old", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tc.nodes[f].Revision() >= rev }, 10*time.Second, time.Millisecond)

	// f stops hearing from the leader (it keeps its state, and serves
	// session reads at revisions it holds).
	tc.net.Link(l, f).SetDrop(true)
	t.Cleanup(func() { tc.net.Link(l, f).SetDrop(false) })
	drev, err := tc.nodes[l].Delete("k") // another client's delete, acknowledged
	require.NoError(t, err)

	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, engine.ErrNotFound, "the leader has applied the delete")
	t.Logf("after the 404 (delete at revision %d), the client's session revision is %d", drev, c.SessionRevision())

	tc.restartAdapter(l) // the connection drops: the client moves to f
	// f hears from the leader again a while later: until then a read
	// that waits for the session is refused as behind, and tried again.
	time.AfterFunc(300*time.Millisecond, func() { tc.net.Link(l, f).SetDrop(false) })
	it := readAfter(t, c, "k")
	require.Zero(t, it.Revision, "the client was told k is gone (deleted at revision %d), then, on another node, read it back: %q at revision %d", drev, it.Value, it.Revision)
}

// TestClient_GetRaisesTheSessionToItsReadRevision: a Get's reply carries
// the item's own revision, and the revision it was read at
// (atRevision), which the client's session takes: a client that read
// one key on an up-to-date node and then moves reads nothing older than
// that state on a lagging node (b was deleted before a was read: it
// must stay deleted after the move). With the item's revision alone, b
// came back.
func TestClient_GetRaisesTheSessionToItsReadRevision(t *testing.T) {
	tc := newTestCluster(t)
	c, l, f := tc.dialMoving()
	ctx := ctxT(t)
	_, err := tc.nodes[l].Set("a", "1", nil)
	require.NoError(t, err)
	rev, err := tc.nodes[l].Set("b", "1", nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tc.nodes[f].Revision() >= rev.Revision }, 10*time.Second, time.Millisecond)

	tc.net.Link(l, f).SetDrop(true)
	t.Cleanup(func() { tc.net.Link(l, f).SetDrop(false) })
	drev, err := tc.nodes[l].Delete("b")
	require.NoError(t, err)
	it, err := c.Get(ctx, "a") // read on the leader, at revision drev or later
	require.NoError(t, err)
	t.Logf("read a (item revision %d) on the leader at revision >= %d; session revision %d", it.Revision, drev, c.SessionRevision())

	tc.restartAdapter(l)
	time.AfterFunc(300*time.Millisecond, func() { tc.net.Link(l, f).SetDrop(false) })
	b := readAfter(t, c, "b")
	require.Zero(t, b.Revision, "after reading at revision >= %d (b deleted at %d), the client read b at revision %d on another node", drev, drev, b.Revision)
}
