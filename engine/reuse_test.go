package engine

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// pinned counts the tree copies in use.
func pinned(db *DB) int {
	db.order.mu.Lock()
	defer db.order.mu.Unlock()
	n := 0
	for _, c := range db.order.pins {
		n += c
	}
	return n
}

// TestOrdered_EveryCopyUnpinned: every reader of a tree copy pins it while
// it reads and unpins it when done, however it ends; a copy left pinned
// would keep the entries removed since from ever being used again.
func TestOrdered_EveryCopyUnpinned(t *testing.T) {
	db, err := Open(t.TempDir(), WithChunks(&Options{SweepInterval: -1, HistoryEvents: 1}, 1<<10, 1<<10))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for i := range 200 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), fmt.Sprintf("%040d", i), nil)
		require.NoError(t, err)
	}
	require.Zero(t, pinned(db))

	require.NoError(t, db.View(func(tx *Tx) error {
		require.Equal(t, 1, pinned(db), "in a view")
		seq, err := tx.Range("", "", nil)
		require.NoError(t, err)
		for range seq {
			require.Equal(t, 1, pinned(db), "a view's range reads the view's copy")
			break
		}
		return nil
	}))
	require.Zero(t, pinned(db), "after a view")

	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	for range seq {
		require.Equal(t, 1, pinned(db), "in a range")
		break // ended early
	}
	require.Zero(t, pinned(db), "after a range ended early")

	_, err = db.Update(func(tx *Tx) error {
		seq, err := tx.Range("", "", nil)
		require.NoError(t, err)
		for range seq {
			require.Equal(t, 1, pinned(db), "in a write transaction's range")
			break
		}
		return nil
	})
	require.NoError(t, err)
	require.Zero(t, pinned(db), "after a write transaction's range")

	sub, err := db.Subscribe([]string{"k0*"}, &SubscribeOptions{Initial: true})
	require.NoError(t, err)
	require.Len(t, sub.Initial, 100)
	sub.Close()
	require.Zero(t, pinned(db), "after a subscription's initial items")

	var buf bytes.Buffer
	_, err = db.Backup(&buf)
	require.NoError(t, err)
	require.Zero(t, pinned(db), "after a backup")
	require.NoError(t, db.Checkpoint())
	require.Zero(t, pinned(db), "after a checkpoint")

	s := db.openSnapshot()
	require.Equal(t, 1, pinned(db), "with a replica's snapshot open")
	s.Close()
	s.Close()
	require.Zero(t, pinned(db), "after a replica's snapshot closed (twice)")

	// Deleting three keys in four leaves the chunks of 1 KiB mostly dead:
	// a compaction runs, over a copy of the tree.
	for i := range 200 {
		if i%4 != 0 {
			_, err := db.Delete(fmt.Sprintf("k%03d", i))
			require.NoError(t, err)
		}
	}
	waitCompaction(db)
	require.Positive(t, Compactions(db), ArenaStats(db))
	require.Zero(t, pinned(db), "after compactions")
}
