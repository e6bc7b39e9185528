package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A commit becomes visible (db.committed) a moment before its batch reaches
// the broker. A subscription from now made in that moment starts after the
// visible revision, not after the broker's newest: it never gets the
// events of a change that Revision already showed.
func TestSubscribe_FromNowAheadOfTheBroker(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	_, err = db.Set("a", "1", nil)
	require.NoError(t, err)
	db.committed.Store(2) // revision 2 visible, its batch not yet handed over
	s, err := db.Subscribe([]string{"*"}, nil)
	db.committed.Store(1)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, int64(3), s.Position().Revision)
}

// A panic while SubscribePatterns holds the writer lock and the Initial
// snapshot (here a nil broker's) releases both. They were released by
// hand, not by defers: a panic there, once recovered, left every later
// write and Close blocked for ever, and the snapshot open.
func TestSubscribe_PanicUnderTheLock(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	broker := db.broker
	db.broker = nil // no write runs meanwhile: nothing publishes to it
	require.Panics(t, func() {
		_, _ = db.Subscribe([]string{"*"}, &SubscribeOptions{Initial: true})
	})
	db.broker = broker
	done := make(chan error, 1)
	go func() { _, err := db.Set("k", "v", nil); done <- err }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Set blocked after the recovered panic: the writer lock was left held")
	}
	require.Zero(t, db.Stats().Snapshots, "the snapshot was left open")
	require.NoError(t, db.Close())
}
