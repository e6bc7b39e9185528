package engine

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEntryTable_ProbesGivenBack: the search keys that ranges and views
// take are given back however they end (to the last item, stopped early,
// a panic in the caller's loop), so that readers running one after
// another, or a few at once, never make the table grow.
func TestEntryTable_ProbesGivenBack(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for i := range 100 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), "v", nil)
		require.NoError(t, err)
	}
	tab := db.entries.tab
	read := func(i int) {
		seq, err := db.Range(fmt.Sprintf("k%03d", i%100), "k050", &RangeOptions{Reverse: i%2 == 0})
		require.NoError(t, err)
		for range seq {
			if i%3 == 0 {
				break
			}
		}
		if i%5 == 0 {
			seq, err := db.Range("", "", nil)
			require.NoError(t, err)
			func() {
				defer func() { require.Equal(t, "stop", recover()) }()
				for range seq {
					panic("stop")
				}
			}()
		}
		require.NoError(t, db.View(func(tx *Tx) error {
			_, err := tx.Get(fmt.Sprintf("k%03d", i%200))
			if i%200 >= 100 {
				require.ErrorIs(t, err, ErrNotFound)
				return nil
			}
			return err
		}))
	}
	read(0) // the first slab of probes
	slabs := len(*tab.slabs.Load())
	for i := range 1000 {
		read(i)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				read(g*500 + i)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, slabs, len(*tab.slabs.Load()), "probes not given back made the table grow")
	tab.mu.Lock()
	defer tab.mu.Unlock()
	require.Len(t, tab.probes, slabEntries, "probes in use after every reader ended")
}

// TestSlabList_At checks that an entry's address, computed from its
// slab's without a load, is the one indexing the slab gives, for every
// place of a slab, and that an id naming no entry (place 0, or a place in
// the table without a slab) panics rather than yield a wild pointer.
func TestSlabList_At(t *testing.T) {
	l := slabList{new(entrySlab), nil, new(entrySlab)}
	for _, s := range []uint32{0, 2} {
		for place := uint32(1); place < entrySlabMax; place++ {
			id := s<<entrySlabBits | place
			require.Same(t, &l[s].entries[place-1], l.at(id), "id %d", id)
		}
	}
	for _, id := range []uint32{0, 2 << entrySlabBits, 1<<entrySlabBits | 5} {
		require.Panics(t, func() { l.at(id) }, "id %d", id)
	}
	require.Panics(t, func() { l.at(3 << entrySlabBits) }, "beyond the table")
}
