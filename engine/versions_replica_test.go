package engine_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestVersions_Replica follows a key's versions through what only a
// replica does between a commit and its publication: several commits of
// one key queued at once, an Abandon, a publication inside a transaction
// that then rolls back, and a Restore. Snapshots read what they saw, and
// no version object outlives what needs it.
func TestVersions_Replica(t *testing.T) {
	t.Run("two queued commits under a snapshot", func(t *testing.T) {
		db, ctl, sim := openSim(t, nil)
		write := func(v string) chan error {
			done := make(chan error, 1)
			go func() { done <- errOf(db.Set("k", v, nil)) }()
			return done
		}
		first := write("v1")
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-first)
		require.Zero(t, engine.Heads(db), "v1 visible, nothing reads below it")

		// v2 and v3 wait together; a snapshot opened now reads v1, which
		// is only the visible copy by then.
		w2 := write("v2")
		waitPending(t, sim, 1)
		w3 := write("v3")
		waitPending(t, sim, 2)
		var snap *engine.Snapshot
		snap, err := ctl.Snapshot()
		require.NoError(t, err)
		sim.commit(t, 2, ctl)
		require.NoError(t, <-w2)
		require.NoError(t, <-w3)
		require.Equal(t, int64(1), snap.Revision())
		var b bytes.Buffer
		require.NoError(t, snap.Write(&b))
		require.Contains(t, b.String(), "v1", "the snapshot holds the value it saw")
		require.NotContains(t, b.String(), "v3")
		require.Equal(t, 1, engine.Heads(db))
		snap.Close()

		last := write("v4")
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-last)
		require.Zero(t, engine.Heads(db))
		require.Zero(t, engine.Held(db))
		it, err := db.Get("k")
		require.NoError(t, err)
		require.Equal(t, "v4", it.Value)
		require.Equal(t, int64(4), it.Version)
	})

	t.Run("abandon puts back the visible copy", func(t *testing.T) {
		c := newClock()
		db, ctl, sim := openSim(t, &engine.Options{Now: c.Now, SweepInterval: -1})
		done := make(chan error, 1)
		go func() { done <- errOf(db.Set("k", "ttl", &engine.SetOptions{TTL: time.Minute})) }()
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
		require.Zero(t, engine.Heads(db))

		// An overwrite without a TTL, lost: the key keeps the TTL and
		// its count.
		go func() { done <- errOf(db.Set("k", "forever", nil)) }()
		waitPending(t, sim, 1)
		sim.lose(t, ctl)
		require.Error(t, <-done)
		require.Zero(t, engine.Heads(db))
		it, err := db.Get("k")
		require.NoError(t, err)
		require.Equal(t, "ttl", it.Value)
		require.Equal(t, int64(1), db.Stats().Keys)
		c.Advance(2 * time.Minute)
		go func() { _, _, err := ctl.Sweep(); done <- err }()
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
		_, err = db.Get("k")
		require.ErrorIs(t, err, engine.ErrNotFound, "the TTL of the visible copy still holds")
		require.Zero(t, db.Stats().Keys)
	})

	t.Run("rollback after the release", func(t *testing.T) {
		db, ctl, sim := openSim(t, nil)
		done := make(chan error, 1)
		go func() { done <- errOf(db.Set("k", "v1", nil)) }()
		waitPending(t, sim, 1)
		// v1 becomes visible while a transaction has v2 on top of it, so
		// its release leaves it in head; the rollback puts it back there.
		errRollback := errors.New("rolled back")
		_, err := db.Update(func(tx *engine.Tx) error {
			if _, err := tx.Set("k", "v2", nil); err != nil {
				return err
			}
			ctl.Publish(1)
			return errRollback
		})
		require.ErrorIs(t, err, errRollback)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
		require.Equal(t, 1, engine.Heads(db))
		require.Equal(t, 1, engine.Held(db))

		go func() { done <- errOf(db.Set("other", "x", nil)) }()
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
		require.Zero(t, engine.Heads(db), "the next commit lets it go")
		require.Zero(t, engine.Held(db))
		it, err := db.Get("k")
		require.NoError(t, err)
		require.Equal(t, "v1", it.Value)
	})

	t.Run("restore forgets what was held", func(t *testing.T) {
		db, ctl, sim := openSim(t, nil)
		done := make(chan error, 1)
		set := func(k, v string) {
			go func() { done <- errOf(db.Set(k, v, nil)) }()
			waitPending(t, sim, 1)
			sim.commit(t, 1, ctl)
			require.NoError(t, <-done)
		}
		set("k", "v1")
		var backup bytes.Buffer
		_, err := ctl.WriteSnapshot(&backup)
		require.NoError(t, err)
		snap, err := ctl.Snapshot()
		require.NoError(t, err)
		defer snap.Close()
		set("k", "v2")
		require.Equal(t, 1, engine.Held(db))
		require.NoError(t, ctl.Restore(&backup))
		require.Zero(t, engine.Held(db))
		require.Zero(t, engine.Heads(db))
		it, err := db.Get("k")
		require.NoError(t, err)
		require.Equal(t, "v1", it.Value)
	})
}
