package wal_test

import (
	"path"
	"testing"

	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// openHistory opens the log in dir and returns the revisions it hands to
// Replay.History and to Replay.Tx.
func openHistory(t *testing.T, fs wal.FS, o wal.Options) (l *wal.Log, hist, txs []int64, err error) {
	t.Helper()
	o.FS = fs
	check := func(into *[]int64) func(*wal.Tx) error {
		return func(tx *wal.Tx) error {
			require.Equal(t, *txN(tx.Revision), *tx)
			*into = append(*into, tx.Revision)
			return nil
		}
	}
	l, err = wal.Open("db", &o, wal.Replay{History: check(&hist), Tx: check(&txs)})
	return l, hist, txs, err
}

// TestLog_Retain checks that a snapshot keeps the segments holding records
// after the revision given to Retain, that Open hands those the snapshot
// holds to Replay.History in order, and that without Retain it keeps none.
func TestLog_Retain(t *testing.T) {
	for _, retain := range []int64{0, 30, 55, 80} {
		fs := wal.NewMemFS()
		l, hist, txs, err := openHistory(t, fs, wal.Options{SegmentSize: 200})
		require.NoError(t, err)
		require.Empty(t, hist)
		require.Empty(t, txs)
		appendDurable(t, l, 1, 80)
		if retain > 0 {
			l.Retain(retain)
		}
		require.NoError(t, l.Snapshot(70, noItems))
		appendDurable(t, l, 81, 90)
		require.NoError(t, l.Close())

		l, hist, txs, err = openHistory(t, fs, wal.Options{SegmentSize: 200})
		require.NoError(t, err)
		require.Equal(t, seq(71, 90), txs)
		require.NotEmpty(t, hist, "retain %d", retain)
		// Whole segments are kept: the history starts at or before the
		// first record after retain, and runs without a gap to the
		// snapshot.
		first := hist[0]
		require.Equal(t, seq(first, 70), hist, "retain %d", retain)
		if retain == 0 {
			require.Greater(t, first, int64(60), "without Retain a snapshot keeps only the segment it ends in")
		} else {
			require.LessOrEqual(t, first, min(retain+1, 71), "retain %d", retain)
		}
		require.NoError(t, l.Close())
	}
}

// TestLog_Retain_Damage checks that damage in a segment kept only for the
// history is refused like any other, and that Repair drops it with every
// older segment, keeping the state whole.
func TestLog_Retain_Damage(t *testing.T) {
	fs := wal.NewMemFS()
	l, _, _, err := openHistory(t, fs, wal.Options{SegmentSize: 200})
	require.NoError(t, err)
	appendDurable(t, l, 1, 80)
	l.Retain(1)
	require.NoError(t, l.Snapshot(70, noItems))
	appendDurable(t, l, 81, 90)
	require.NoError(t, l.Close())

	names, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Greater(t, len(names), 4)
	damaged := path.Join("db/wal", names[1]) // a segment with history only
	b, err := fs.ReadFile(damaged)
	require.NoError(t, err)
	b = append([]byte(nil), b...)
	b[len(b)/2] ^= 0x10
	fs.WriteFile(damaged, b)

	_, _, _, err = openHistory(t, fs, wal.Options{SegmentSize: 200})
	require.ErrorIs(t, err, wal.ErrCorrupt)
	require.Contains(t, err.Error(), names[1])

	l, hist, txs, err := openHistory(t, fs, wal.Options{SegmentSize: 200, Repair: true})
	require.NoError(t, err)
	require.Equal(t, seq(71, 90), txs, "the state is whole")
	require.NotEmpty(t, hist)
	require.Equal(t, seq(hist[0], 70), hist, "the history starts after the damaged segment")
	require.NoError(t, l.Close())
	after, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Equal(t, names[2:], after, "the damaged segment and the older ones are gone")
}

func noItems(func(*wal.Item) bool) {}
