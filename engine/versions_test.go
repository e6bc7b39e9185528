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
			if db.index.tab.at(id).head() != nil {
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

// TestVersions_IdleSlabsLetTheirHeadsGo checks that a slab's array of
// heads goes once its heads have all been nil since the last visit, that
// one a snapshot still reads through is kept however often slabs are
// visited, and that a slab gets its heads back when a key of it is
// written again.
func TestVersions_IdleSlabsLetTheirHeadsGo(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	tab := db.entries.tab
	visit := func() { // twice over every slab, as writes do in turn
		db.wmu.Lock()
		defer db.wmu.Unlock()
		tab.idleHeads(len(tab.load()))
		tab.idleHeads(len(tab.load()))
	}
	armed := func() (slabs []uint32) {
		for n, s := range tab.load() {
			if s != nil && s.heads.Load() != nil {
				slabs = append(slabs, uint32(n))
			}
		}
		return slabs
	}

	const keys = 3 * entrySlabMax
	key := func(i int) string { return fmt.Sprintf("k%05d", i) }
	for i := range keys {
		_, err := db.Set(key(i), "v1", nil)
		require.NoError(t, err)
	}
	require.NotEmpty(t, armed(), "writes give their slabs heads")
	visit()
	require.Empty(t, armed(), "no snapshot is open: every slab lets its heads go")

	// The keys of one slab change under an open snapshot, which reads
	// "v1" through their heads.
	s := db.openSnapshot()
	slab := db.index.get(key(entrySlabMax+5)).id >> entrySlabBits
	var changed []string
	for i := range keys {
		if db.index.get(key(i)).id>>entrySlabBits == slab {
			_, err := db.Set(key(i), "v2", nil)
			require.NoError(t, err)
			changed = append(changed, key(i))
		}
	}
	require.Greater(t, len(changed), entrySlabMax/2)
	for range 3 {
		visit()
		require.Equal(t, []uint32{slab}, armed(), "the slab a snapshot reads through keeps its heads")
	}
	for i := range keys {
		v := db.index.get(key(i)).at(s.s.rev, tab)
		require.Equal(t, "v1", v.value, key(i))
	}
	s.Close()

	// The next commit lets the kept versions go, and then the heads.
	_, err = db.Set(key(0), "v3", nil)
	require.NoError(t, err)
	require.Zero(t, heads(db))
	visit()
	require.Empty(t, armed())

	// A write gives its slab heads again, and a snapshot reads through
	// them.
	s = db.openSnapshot()
	defer s.Close()
	_, err = db.Set(changed[0], "v4", nil)
	require.NoError(t, err)
	require.Equal(t, []uint32{slab}, armed())
	require.Equal(t, "v2", db.index.get(changed[0]).at(s.s.rev, tab).value)
	it, err := db.Get(changed[0])
	require.NoError(t, err)
	require.Equal(t, "v4", it.Value)
}
