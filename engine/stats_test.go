package engine_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestStats_RolledBackWritesNotCounted: Stats.Writes counts successful
// writes: those of a transaction that rolled back are not.
func TestStats_RolledBackWritesNotCounted(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	boom := errors.New("boom")
	_, err = db.Update(func(tx *engine.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := tx.Set(k, "v", nil); err != nil {
				return err
			}
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	st := db.Stats()
	t.Logf("after one rolled-back tx of 3 sets: Writes=%d Commits=%d Rollbacks=%d Keys=%d", st.Writes, st.Commits, st.Rollbacks, st.Keys)
	require.EqualValues(t, 0, st.Keys)
	require.EqualValues(t, 1, st.Rollbacks)
	require.EqualValues(t, 0, st.Writes, "no write succeeded")
}

// TestStats_ZeroAfterReopen: counters start from zero when the database
// opens; the writes, commits and events its replay applies again are not
// counted.
func TestStats_ZeroAfterReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		_, err := db.Set(k, "v", nil)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	db, err = engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	st := db.Stats()
	t.Logf("after reopen: Writes=%d Commits=%d Published=%d Syncs=%d fsync hist=%v", st.Writes, st.Commits, st.Subscriptions.Published, st.Syncs, st.SyncLatency.Counts)
	require.EqualValues(t, 0, st.Writes)
	require.EqualValues(t, 0, st.Commits)
	require.EqualValues(t, 0, st.Subscriptions.Published)
}

// TestStats_FeedCountersAcrossRestore: Replica.Restore (a cluster
// follower installing the leader's snapshot) replaces the broker; the
// change feed's counters carry on from the old one's, and count the
// subscription the restore ended.
func TestStats_FeedCountersAcrossRestore(t *testing.T) {
	snap := oneKeyBackup(t)
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: refuse{}})
	require.NoError(t, err)
	defer db.Close()
	sub, err := db.Subscribe([]string{"*"}, nil)
	require.NoError(t, err)
	defer sub.Close()
	for rev := int64(1); rev <= 5; rev++ {
		require.NoError(t, ctl.ApplyCommitted(&wal.Tx{Revision: rev, Writes: []wal.Write{{Key: "k", Value: "v", Kind: wal.KindPut, Created: rev == 1}}}))
	}
	require.Eventually(t, func() bool { return db.Stats().Subscriptions.Delivered == 5 }, 5*time.Second, time.Millisecond)
	before := db.Stats()
	require.NoError(t, ctl.Restore(bytes.NewReader(snap)))
	after := db.Stats()
	t.Logf("published %d -> %d, delivered %d -> %d, compacted %d -> %d, commits %d -> %d",
		before.Subscriptions.Published, after.Subscriptions.Published,
		before.Subscriptions.Delivered, after.Subscriptions.Delivered,
		before.Subscriptions.Compacted, after.Subscriptions.Compacted,
		before.Commits, after.Commits)
	require.GreaterOrEqual(t, after.Subscriptions.Published, before.Subscriptions.Published, "a counter went down")
	require.GreaterOrEqual(t, after.Subscriptions.Delivered, before.Subscriptions.Delivered, "a counter went down")
	require.GreaterOrEqual(t, after.Subscriptions.Compacted, int64(1), "the subscription Restore ended for compaction is not counted")
}

// TestStats_GetsInTransactions: Stats.Gets counts point reads in and out
// of transactions.
func TestStats_GetsInTransactions(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)
	_, err = db.Get("k")
	require.NoError(t, err)
	require.EqualValues(t, 1, db.Stats().Gets)
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		_, err := tx.Get("k")
		return err
	}))
	_, err = db.Update(func(tx *engine.Tx) error {
		_, err := tx.Get("k")
		return err
	})
	require.NoError(t, err)
	t.Logf("after db.Get + View tx.Get + Update tx.Get: Gets=%d", db.Stats().Gets)
	require.EqualValues(t, 3, db.Stats().Gets, "point reads in transactions are not counted")
}

// TestStats_CheckpointsWritten: Stats.Checkpoints counts snapshots
// written, not a Checkpoint that found nothing new to write.
func TestStats_CheckpointsWritten(t *testing.T) {
	dir := t.TempDir()
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, db.Checkpoint())
	}
	st := db.Stats()
	t.Logf("3 Checkpoint calls, 1 write: Checkpoints=%d", st.Checkpoints)
	require.EqualValues(t, 1, st.Checkpoints, "one snapshot written")
}

// TestStats_DuringRestore: Stats while a replica applies and restores;
// under -race it fails if they race.
func TestStats_DuringRestore(t *testing.T) {
	snap := oneKeyBackup(t)
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: refuse{}})
	require.NoError(t, err)
	defer db.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			rev := db.Revision() + 1
			ctl.ApplyCommitted(&wal.Tx{Revision: rev, Writes: []wal.Write{{Key: "k", Value: "v", Kind: wal.KindPut, Created: true}}})
			if rev%20 == 0 {
				require.NoError(t, ctl.Restore(bytes.NewReader(snap)))
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			db.Stats()
		}
	}
}

// oneKeyBackup is the backup of a database of one key.
func oneKeyBackup(t *testing.T) []byte {
	t.Helper()
	src, err := engine.Open("", &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer src.Close()
	_, err = src.Set("x", "1", nil)
	require.NoError(t, err)
	var snap bytes.Buffer
	_, err = src.Backup(&snap)
	require.NoError(t, err)
	return snap.Bytes()
}
