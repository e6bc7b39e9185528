package engine_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestExpiry_ClockBackwards: once a read has found a key expired, a clock
// (Options.Now) that steps back, as a wall clock does when it is
// corrected, does not bring the key back before its sweep: not to Get,
// scans, View, transactions or an Initial load, and the sweep removes it.
func TestExpiry_ClockBackwards(t *testing.T) {
	c := newClock()
	db := open(t, c)
	_, err := db.Set("k", "v", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)
	_, err = db.Set("other", "v", nil)
	require.NoError(t, err)
	c.Advance(time.Second)
	_, err = db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)

	c.Advance(-500 * time.Millisecond) // the clock is corrected
	_, err = db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound, "a key seen expired came back")
	require.Equal(t, []engine.Item{{Key: "other", Value: "v", Revision: 2, CreateRevision: 2, Version: 1}}, all(t, db))
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		_, err := tx.Get("k")
		require.ErrorIs(t, err, engine.ErrNotFound)
		return nil
	}))
	sub, err := db.Subscribe([]string{"k"}, &engine.SubscribeOptions{Initial: true})
	require.NoError(t, err)
	require.Empty(t, sub.Initial)
	require.NoError(t, sub.Close())
	require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
		_, err := tx.Get("k")
		require.ErrorIs(t, err, engine.ErrNotFound)
		return nil
	})))
	require.Equal(t, 1, engine.Sweep(db), "the sweep removes the key seen expired")
}

// TestExpiry_ViewJudgesAfterItsSnapshot: a View must not show a write
// that found a key expired together with that key alive. It read the
// clock before it took its snapshot: a writer that committed in between,
// after the key expired, was in the snapshot, while the key was judged
// at the earlier time.
func TestExpiry_ViewJudgesAfterItsSnapshot(t *testing.T) {
	c := newClock()
	t0 := c.Now()
	var db *engine.DB
	var armed, fired, writing atomic.Bool
	now := func() time.Time {
		if !armed.Load() || writing.Load() {
			return c.Now()
		}
		if fired.CompareAndSwap(false, true) {
			// The View has read the clock: time passes, and a writer
			// finds the key expired before the View takes its snapshot.
			c.Advance(2 * time.Second)
			writing.Store(true)
			_, err := db.Update(func(tx *engine.Tx) error {
				if _, err := tx.Get("k"); !errors.Is(err, engine.ErrNotFound) {
					return err
				}
				_, err := tx.Set("gone", "k expired", nil)
				return err
			})
			writing.Store(false)
			require.NoError(t, err)
		}
		return t0 // the time the View read
	}
	var err error
	db, err = engine.Open("", &engine.Options{SweepInterval: -1, Now: now})
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Set("k", "v", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)

	armed.Store(true)
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		armed.Store(false)
		_, kerr := tx.Get("k")
		gone, gerr := tx.Get("gone")
		require.False(t, kerr == nil && gerr == nil, "the View shows k alive and %q, written once k had expired (revision %d)", gone.Value, tx.Revision())
		return nil
	}))
	require.True(t, fired.Load())
}

// TestExpiry_ViewReadsTheClockAfterItsSnapshot: a View judges expiry at
// a time no earlier than the commits its snapshot holds. It read the
// clock before it took its snapshot, so a transaction that committed in
// between, later by the clock, was in the snapshot while the keys were
// judged at the earlier time: here one that, by its Now, knew k had
// expired, shown beside k alive.
func TestExpiry_ViewReadsTheClockAfterItsSnapshot(t *testing.T) {
	c := newClock()
	t0 := c.Now()
	var db *engine.DB
	var armed, fired, writing atomic.Bool
	now := func() time.Time {
		if !armed.Load() || writing.Load() {
			return c.Now()
		}
		if fired.CompareAndSwap(false, true) {
			c.Advance(2 * time.Second)
			writing.Store(true)
			_, err := db.Update(func(tx *engine.Tx) error {
				_, err := tx.Set("clock", tx.Now().Format(time.RFC3339Nano), nil)
				return err
			})
			writing.Store(false)
			require.NoError(t, err)
		}
		return t0
	}
	var err error
	db, err = engine.Open("", &engine.Options{SweepInterval: -1, Now: now})
	require.NoError(t, err)
	defer db.Close()
	k, err := db.Set("k", "v", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)

	armed.Store(true)
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		armed.Store(false)
		it, err := tx.Get("clock")
		if errors.Is(err, engine.ErrNotFound) {
			return nil // the commit is after the snapshot
		}
		require.NoError(t, err)
		at, err := time.Parse(time.RFC3339Nano, it.Value)
		require.NoError(t, err)
		require.False(t, at.Before(k.ExpiresAt), "the writer's time")
		require.False(t, tx.Now().Before(at), "the View's Now %v is before the commit %v it shows", tx.Now(), at)
		_, err = tx.Get("k")
		require.ErrorIs(t, err, engine.ErrNotFound, "k had expired by a commit the View shows")
		return nil
	}))
	require.True(t, fired.Load())
}
