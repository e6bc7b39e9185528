package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// TestDB_EdgeKeys: keys that tie on the abbreviated 12 bytes, 0xff
// bytes, trailing zeros, and keys and values at the size limits, read by
// Get, ranges both ways, views and prefix scans, before and after half
// are deleted and the store is reopened.
func TestDB_EdgeKeys(t *testing.T) {
	fs := vfs.NewMemFS()
	opts := func() *Options {
		return WithChunks(&Options{SweepInterval: -1, Sync: SyncNever, FS: fs, MaxKeySize: 70000, MaxValueSize: 300000, CheckpointBytes: -1}, 4096, 4096)
	}
	db, err := Open("db", opts())
	require.NoError(t, err)
	base := "abcdefghijkl" // 12 bytes
	var keys []string
	for _, s := range []string{"", "\x00", "\x00\x00", "\xff", "\xff\xff", "a", "a\x00", "\xff\x00"} {
		keys = append(keys, base+s)
	}
	keys = append(keys, "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00", "\x00", "\x00\x00", "abc", "abc\x00", "abc\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01")
	keys = append(keys, strings.Repeat("k", 70000), strings.Repeat("k", 69999)+"\xff", strings.Repeat("k", 5000))
	vals := map[string]string{}
	for i, k := range keys {
		v := fmt.Sprintf("%d:", i) + strings.Repeat("v", (i*7919)%5000)
		if i == 3 {
			v = strings.Repeat("V", 300000)
		}
		if i == 4 {
			v = ""
		}
		vals[k] = v
		_, err := db.Set(k, v, nil)
		require.NoError(t, err)
	}
	verify := func(db *DB) {
		sorted := append([]string(nil), keys...)
		slices.Sort(sorted)
		var live []string
		for _, k := range sorted {
			if _, ok := vals[k]; ok {
				live = append(live, k)
			}
		}
		for _, k := range keys {
			it, err := db.Get(k)
			if v, ok := vals[k]; ok {
				require.NoError(t, err, "%q", k)
				require.Equal(t, k, it.Key)
				require.Equal(t, v, it.Value)
			} else {
				require.ErrorIs(t, err, ErrNotFound)
			}
		}
		for _, rev := range []bool{false, true} {
			seq, err := db.Range("", "", &RangeOptions{Reverse: rev})
			require.NoError(t, err)
			var got []string
			for it, err := range seq {
				require.NoError(t, err)
				require.Equal(t, vals[it.Key], it.Value)
				got = append(got, it.Key)
			}
			if rev {
				for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
					got[i], got[j] = got[j], got[i]
				}
			}
			require.Equal(t, live, got, "reverse %v", rev)
		}
		// Every pair of bounds among the keys.
		for _, a := range sorted {
			for _, b := range sorted {
				var want []string
				for _, k := range live {
					if k >= a && k < b {
						want = append(want, k)
					}
				}
				for _, rev := range []bool{false, true} {
					seq, err := db.Range(a, b, &RangeOptions{Reverse: rev})
					require.NoError(t, err)
					var got []string
					for it, err := range seq {
						require.NoError(t, err)
						got = append(got, it.Key)
					}
					if rev {
						for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
							got[i], got[j] = got[j], got[i]
						}
					}
					require.Equal(t, want, got, "[%q, %q) reverse %v", a, b, rev)
				}
			}
		}
		require.NoError(t, db.View(func(tx *Tx) error {
			for _, k := range keys {
				it, err := tx.Get(k)
				if v, ok := vals[k]; ok {
					require.NoError(t, err, "%q", k)
					require.Equal(t, v, it.Value)
				} else {
					require.ErrorIs(t, err, ErrNotFound)
				}
			}
			return nil
		}))
		require.NoError(t, ArenaErr(db))
	}
	verify(db)
	for i, k := range keys {
		if i%2 == 1 {
			_, err := db.Delete(k)
			require.NoError(t, err)
			delete(vals, k)
		}
	}
	verify(db)
	require.NoError(t, db.Checkpoint())
	require.NoError(t, db.Close())
	db, err = Open("db", opts())
	require.NoError(t, err)
	verify(db)
	require.NoError(t, db.Close())
}
