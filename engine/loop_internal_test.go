package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTxLoop_KeepsOnlyWhatItHasNotRead: a Range loop in a write
// transaction whose body rewrites the key it is given, and one two keys
// ahead, shows every key as it was when the loop began, and keeps the
// before-images of the keys ahead only until it reads them: at most two
// batches' worth, where it kept one for every key written.
func TestTxLoop_KeepsOnlyWhatItHasNotRead(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const n = 1000
	key := func(i int) string { return fmt.Sprintf("k%04d", i) }
	for i := range n {
		_, err := db.Set(key(i), "old", nil)
		require.NoError(t, err)
	}
	for _, reverse := range []bool{false, true} {
		_, err := db.Update(func(tx *Tx) error {
			seq, err := tx.Range("", "", &RangeOptions{Reverse: reverse})
			require.NoError(t, err)
			i, kept := 0, 0
			for it, err := range seq {
				require.NoError(t, err)
				want := "old"
				if reverse {
					want = "new" // the first pass wrote every key
				}
				require.Equal(t, want, it.Value, "reverse %v: %s as the loop began", reverse, it.Key)
				_, err = tx.Set(it.Key, it.Value+"+", nil)
				require.NoError(t, err)
				ahead := i + 2
				if reverse {
					ahead = n - 1 - i - 2
				}
				if ahead >= 0 && ahead < n {
					_, err = tx.Set(key(ahead), "ahead", nil)
					require.NoError(t, err)
				}
				kept = max(kept, len(tx.loops[0].before))
				i++
			}
			require.Equal(t, n, i)
			require.LessOrEqual(t, kept, 2*scanBatch, "reverse %v", reverse)
			return nil
		})
		require.NoError(t, err)
		if !reverse {
			for i := range n {
				_, err := db.Set(key(i), "new", nil)
				require.NoError(t, err)
			}
		}
	}
}
