package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// heads counts the entries that still hold a version object (head).
func heads(db *DB) int {
	n := 0
	for i := range db.index.shards {
		s := &db.index.shards[i]
		s.mu.RLock()
		s.t.each(func(id uint32) {
			if db.index.tab.at(id).head().Load() != nil {
				n++
			}
		})
		s.mu.RUnlock()
	}
	return n
}

// TestVersions_KeptOnlyWhileNeeded checks that a key's newest version is
// kept as an object only while a snapshot reads below it: with none open,
// a visible value is its entry's visible copy alone; a snapshot opened
// before an overwrite still reads the value it saw, which exists by then
// only in that copy; once the snapshot closes, the next commit lets the
// kept versions go. Tombstones stay until their entries are buried.
func TestVersions_KeptOnlyWhileNeeded(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			var path string
			if dir != "" {
				path = t.TempDir()
			}
			db, err := Open(path, nil)
			require.NoError(t, err)
			defer func() { db.Close() }()

			const keys = 100
			key := func(i int) string { return fmt.Sprintf("k%03d", i) }
			for i := range keys {
				_, err := db.Set(key(i), "v1", nil)
				require.NoError(t, err)
			}
			require.Zero(t, heads(db), "no snapshot is open: every value is its visible copy alone")

			// A snapshot opened now reads "v1" after every key changes.
			s := db.openSnapshot()
			for i := range keys {
				_, err := db.Set(key(i), "v2", nil)
				require.NoError(t, err)
			}
			require.Equal(t, keys, heads(db), "the open snapshot reads below every new version")
			for i := range keys {
				v := s.db.index.get(key(i)).at(s.s.rev, s.db.entries.tab)
				require.Equal(t, "v1", v.value, key(i))
			}
			n := 0
			for it := range snapshotItems(s.s.t, s.s.rev) {
				require.Equal(t, "v1", it.Value, it.Key)
				n++
			}
			require.Equal(t, keys, n)
			s.Close()

			// The next commit lets the versions the snapshot kept go.
			_, err = db.Set("other", "x", nil)
			require.NoError(t, err)
			require.Zero(t, heads(db))
			for i := range keys {
				it, err := db.Get(key(i))
				require.NoError(t, err)
				require.Equal(t, "v2", it.Value)
				require.Equal(t, int64(2), it.Version)
			}

			// A deleted key keeps its tombstone until its entry is buried;
			// after that it is gone from the index altogether.
			_, err = db.Delete(key(0))
			require.NoError(t, err)
			_, err = db.Set("other", "y", nil) // a write buries what is visible
			require.NoError(t, err)
			require.Nil(t, db.index.get(key(0)))
			require.Zero(t, heads(db))

			if path == "" {
				return
			}
			// Recovery loads the visible copies alone, from the checkpoint
			// and from the log.
			require.NoError(t, db.Checkpoint())
			_, err = db.Set(key(1), "v3", nil)
			require.NoError(t, err)
			require.NoError(t, db.Close())
			db, err = Open(path, nil)
			require.NoError(t, err)
			require.Zero(t, heads(db))
			it, err := db.Get(key(1))
			require.NoError(t, err)
			require.Equal(t, "v3", it.Value)
			require.Equal(t, int64(3), it.Version)
		})
	}
}
