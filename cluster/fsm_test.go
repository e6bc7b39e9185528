package cluster

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// newTestFSM is a follower's state machine with no raft around it.
func newTestFSM(t *testing.T) *fsm {
	r := newReplicator(time.Second, func() error { return ErrNotLeader })
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: r})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	r.rep = ctl
	return newFSM(r, db, t.Logf)
}

// persisted returns the raft snapshot of f's state, as Persist writes it.
func persisted(t testing.TB, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	snap.Release()
	return sink.Bytes()
}

func putTx(rev int64, key string) *wal.Tx {
	return &wal.Tx{Revision: rev, Time: time.Now().UnixNano(), Writes: []wal.Write{{Kind: wal.KindPut, Key: key, Value: key, Created: true}}}
}

func applyEntry(f *fsm, index uint64, nonce, prev uint64, txs ...*wal.Tx) {
	f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buildEntry(nonce, prev, txs)})
}

func TestFSM_SkipsEntriesExecutedOnALostState(t *testing.T) {
	f := newTestFSM(t)
	applyEntry(f, 1, 0xA, 0, putTx(1, "a"))
	require.Equal(t, int64(1), f.db.Revision())

	// A deposed leader's entry, executed after revisions that never
	// committed: its revision even follows, but its parent does not.
	applyEntry(f, 2, 0xB, 0xDEAD, putTx(2, "stale"))
	// An entry whose revisions do not follow.
	applyEntry(f, 3, 0xA, 0xA, putTx(5, "gap"))
	require.NoError(t, f.err(), "skipped, not failed")
	require.Equal(t, int64(1), f.db.Revision())
	_, err := f.db.Get("stale")
	require.ErrorIs(t, err, engine.ErrNotFound)

	applyEntry(f, 4, 0xC, 0xA, putTx(2, "b"), putTx(3, "c"))
	require.Equal(t, int64(3), f.db.Revision())
	require.Equal(t, uint64(4), f.applied.index())

	// A snapshot carries the chain: a node restored from it goes on.
	snapshot := persisted(t, f)
	g := newTestFSM(t)
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(snapshot))))
	require.Equal(t, int64(3), g.db.Revision())
	applyEntry(g, 5, 0xD, 0xC, putTx(4, "d"))
	require.Equal(t, int64(4), g.db.Revision())
	applyEntry(g, 6, 0xE, 0xC, putTx(5, "e")) // follows C, not D: stale
	require.Equal(t, int64(4), g.db.Revision())

	// Damage stops the node rather than diverging.
	g.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte("junk")})
	failed := g.err()
	require.Error(t, failed)
	// It stays stopped, with the first error.
	require.Equal(t, failed, g.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: buildEntry(0xF, 0xD, []*wal.Tx{putTx(5, "f")})}))
	require.Equal(t, failed, g.err())
	require.Equal(t, int64(4), g.db.Revision())
}

// TestFSM_SnapshotWaitsForTheAppliedRevision: an entry this node
// executed may apply before its writer has queued the commit, so
// Snapshot waits until the applied revision is visible, and fails, not
// waits for ever, if the DB closes first.
func TestFSM_SnapshotWaitsForTheAppliedRevision(t *testing.T) {
	f := newTestFSM(t)
	applyEntry(f, 1, 0xA, 0, putTx(1, "a"))
	behind := func(rev int64) { // as if revision rev applied, not yet visible
		f.r.stintMu.Lock()
		defer f.r.stintMu.Unlock()
		f.r.lastRev = rev
	}
	type result struct {
		s   raft.FSMSnapshot
		err error
	}
	got := make(chan result, 1)
	snapshot := func() {
		go func() {
			s, err := f.Snapshot()
			got <- result{s, err}
		}()
	}
	wait := func() result {
		t.Helper()
		select {
		case r := <-got:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("Snapshot did not return")
			return result{}
		}
	}

	behind(2)
	snapshot()
	select {
	case r := <-got:
		t.Fatalf("Snapshot returned (%v) before revision 2 was visible", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, f.r.rep.ApplyCommitted(putTx(2, "b")))
	r := wait()
	require.NoError(t, r.err)
	require.Equal(t, int64(2), r.s.(fsmSnapshot).s.Revision())
	r.s.Release()

	behind(3)
	snapshot()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, f.db.Close())
	r = wait()
	require.ErrorIs(t, r.err, engine.ErrClosed)
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// TestFSM_BreakingAStintRefusesWritesFirst: another leader's entry ends
// the stint this node holds. A write that took the engine's writer lock
// between the abandoning of the speculative tail and the end of the stint
// would stay speculative, and the entry's own revisions could not apply:
// the node would stop. The stint ends first, so such a write is refused.
func TestFSM_BreakingAStintRefusesWritesFirst(t *testing.T) {
	f := newTestFSM(t)
	applyEntry(f, 1, 0xA, 0, putTx(1, "a"))
	f.r.startStint() // this node leads
	late := writeWhileBreaking(f)
	applyEntry(f, 2, 0xB, 0xA, putTx(2, "b")) // another leader's
	require.NoError(t, f.err(), "the entry of the other leader could not apply")
	require.Equal(t, int64(2), f.db.Revision())
	_, err := f.db.Get("b")
	require.NoError(t, err)
	_, err = f.db.Get("late")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.ErrorIs(t, <-late, ErrNotLeader, "the write between the two steps was not refused")
}

// TestFSM_RestoreRefusesWritesFirst: a snapshot restored on a node that
// held a stint (raft installs one on a deposed leader that fell behind)
// ends the stint before it replaces the state, so that no write of that
// stint executes on the restored state and stays speculative there: the
// next entry could not apply.
func TestFSM_RestoreRefusesWritesFirst(t *testing.T) {
	src := newTestFSM(t)
	applyEntry(src, 1, 0xA, 0, putTx(1, "a"), putTx(2, "b"))
	snapshot := persisted(t, src)

	f := newTestFSM(t)
	f.r.startStint()
	late := writeWhileBreaking(f)
	require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(snapshot))))
	require.ErrorIs(t, <-late, ErrNotLeader, "a write on the restored state was not refused")
	applyEntry(f, 2, 0xB, 0xA, putTx(3, "c"))
	require.NoError(t, f.err())
	require.Equal(t, int64(3), f.db.Revision())
	_, err := f.db.Get("late")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

// writeWhileBreaking has f's replicator write the key "late" when a
// stint breaks (replicator.breaking), and returns that write's outcome.
// The hook returns once the write was refused, or after 200 ms, taken:
// then it waits for its entry.
func writeWhileBreaking(f *fsm) <-chan error {
	late := make(chan error, 1)
	f.r.breaking = func() {
		go func() {
			_, err := f.db.Set("late", "v", nil)
			late <- err
		}()
		select {
		case err := <-late: // refused at once
			late <- err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return late
}

// TestFSM_ForgettingOldOutcomesKeepsALaterWaiter: the replicator forgets
// the oldest resolved revisions once it remembers more than
// keepOutcomes. A revision resolved in one stint (its write refused) is
// taken again by the next; forgetting the first must not drop the
// second's waiter before its entry applies, or its writer, whose write
// committed, would wait until ErrUncertain.
func TestFSM_ForgettingOldOutcomesKeepsALaterWaiter(t *testing.T) {
	f := newTestFSM(t)
	r := f.r
	applyEntry(f, 1, 0xA, 0, putTx(1, "a"))
	r.startStint()
	for rev := int64(2); rev < 2+keepOutcomes+16; rev++ {
		require.NoError(t, r.Append(putTx(rev, "refused")))
	}
	r.endStint("the test ends it") // every one of them fails
	r.startStint()
	require.NoError(t, r.Append(putTx(2, "b")))
	require.NoError(t, r.Append(putTx(3, "c")))
	r.mu.Lock()
	w := r.waiters[3]
	r.mu.Unlock()
	nonce := r.stint
	applyEntry(f, 2, nonce, 0xA, putTx(2, "b"))
	applyEntry(f, 3, nonce, nonce, putTx(3, "c"))
	require.True(t, isDone(w), "the writer of revision 3, which committed, was never told")
	require.NoError(t, w.err)
}

// TestFSM_SnapshotCarriesTheCommitClock: a raft snapshot holds the
// newest commit time of its revisions, which the restored node's clock
// does not go below; one of an earlier release, without it, restores as
// before.
func TestFSM_SnapshotCarriesTheCommitClock(t *testing.T) {
	src := newTestFSM(t)
	tx := putTx(1, "a")
	tx.Time = time.Now().Add(time.Hour).UnixNano() // a leader whose clock is ahead
	applyEntry(src, 1, 0xA, 0, tx)
	snapshot := persisted(t, src)

	f := newTestFSM(t)
	require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(snapshot))))
	require.Equal(t, tx.Time, f.r.clockFloor.Load())
	again, err := f.Snapshot()
	require.NoError(t, err)
	require.Equal(t, tx.Time, again.(fsmSnapshot).lastTime, "a snapshot of the restored state carries it on")
	again.Release()

	old := append(snapshot[:8:8], snapshot[8+len(clockMark)+8:]...)
	g := newTestFSM(t)
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(old))))
	require.Equal(t, int64(1), g.db.Revision())
	applyEntry(g, 2, 0xB, 0xA, putTx(2, "b"))
	require.NoError(t, g.err())
	require.Equal(t, int64(2), g.db.Revision())
}

// FuzzFSMRestore: whatever bytes a raft snapshot holds, Restore returns
// an error or a state that snapshots and restores again to the same
// revision; it never panics.
func FuzzFSMRestore(f *testing.F) {
	r := newReplicator(time.Second, func() error { return ErrNotLeader })
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: r})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	r.rep = ctl
	src := newFSM(r, db, f.Logf)
	applyEntry(src, 1, 0xA, 0, putTx(1, "a"), putTx(2, "b"))
	good := persisted(f, src)
	f.Add(good)
	f.Add(append(good[:8:8], good[8+len(clockMark)+8:]...)) // without the clock
	f.Add(good[:8+len(clockMark)+4])
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		g := newTestFSM(t)
		if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
			return
		}
		h := newTestFSM(t)
		require.NoError(t, h.Restore(io.NopCloser(bytes.NewReader(persisted(t, g)))))
		require.Equal(t, g.db.Revision(), h.db.Revision())
	})
}
