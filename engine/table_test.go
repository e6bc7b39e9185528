package engine

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"unsafe"
	"weak"

	"github.com/stretchr/testify/require"
)

// TestEntryTable_ProbesGivenBack: the search keys that ranges and views
// take are given back however they end (to the last item, stopped early,
// a panic in the caller's loop), so that readers running one after
// another, or a few at once, never make the table grow.
func TestEntryTable_ProbesGivenBack(t *testing.T) {
	db := open100(t)
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

// TestSlabGroups: slabs share allocations in groups fixed by their
// places, which grow with the table; a slab made in a freed place of a
// group that lives on gets that memory again, cleared; and a group's
// allocation is freed once none of its slabs is in the table, and not
// before.
func TestSlabGroups(t *testing.T) {
	for n := range uint32(2000) {
		first, size := slabGroup(n)
		require.True(t, size >= 1 && size <= maxSlabGroup && size&(size-1) == 0, "place %d: size %d", n, size)
		require.True(t, first%size == 0 && first <= n && n < first+size, "place %d: group %d of %d", n, first, size)
		for i := first; i < first+size; i++ {
			f, s := slabGroup(i)
			require.Equal(t, [2]uint32{first, size}, [2]uint32{f, s}, "places %d and %d", n, i)
		}
	}
	_, small := slabGroup(31)
	require.Equal(t, uint32(1), small, "a small table's slabs are each alone")
	_, large := slabGroup(256)
	require.Equal(t, uint32(maxSlabGroup), large)

	tab := newEntryTable()
	const places = 256 + 2*maxSlabGroup
	for i := range uint32(places) {
		require.Equal(t, i, tab.newSlab())
	}
	slabs := tab.load()
	size := uintptr(unsafe.Sizeof(entrySlab{}))
	for n := range uint32(places) {
		first, _ := slabGroup(n)
		want := uintptr(unsafe.Pointer(slabs[first])) + uintptr(n-first)*size
		require.Equal(t, want, uintptr(unsafe.Pointer(slabs[n])), "place %d is not in its group's allocation", n)
	}

	// A freed place in a group that lives on: the same memory, cleared.
	const n = 256 + 3
	old := slabs[n]
	old.entries[7].kref.Store(42)
	old.entries[7].vis.rev.Store(42)
	v := &version{rev: 1}
	tab.setHead(&old.entries[7], v)
	tab.dropHead(&old.entries[7], v) // the slab keeps its table of heads, all nil
	require.NotNil(t, tab.slabHeadsAt(n).heads.Load())
	tab.freeSlab(n)
	require.Nil(t, tab.slabHeadsAt(n).heads.Load(), "a freed place kept its table of heads")
	require.Equal(t, uint32(n), tab.newSlab())
	again := tab.load()[n]
	require.Same(t, old, again)
	require.Zero(t, again.entries[7].kref.Load())
	require.Zero(t, again.entries[7].vis.rev.Load())
	require.Equal(t, uint32(n<<entrySlabBits|8), again.entries[7].id)
	old, again, slabs = nil, nil, nil

	// A group is freed once all its slabs are out of the table.
	gone := weak.Make(tab.load()[256])
	for i := uint32(256); i < 256+maxSlabGroup-1; i++ {
		tab.freeSlab(i)
	}
	runtime.GC()
	require.NotNil(t, gone.Value(), "a group was freed while one of its slabs was in the table")
	tab.freeSlab(256 + maxSlabGroup - 1)
	runtime.GC()
	require.Nil(t, gone.Value(), "a group none of whose slabs is in the table was kept")
	runtime.KeepAlive(tab)
}

// TestSlabGroups_ReuseWhileReleasing: a release pending for a version
// that an entry of a freed slab once held (pub.held) reads the entry
// while its place's memory goes to a new slab. Under -race, a plain store
// there (ids written again, the slab cleared as plain memory) is a race.
func TestSlabGroups_ReuseWhileReleasing(t *testing.T) {
	tab := newEntryTable()
	for range 34 {
		tab.newSlab()
	}
	first, size := slabGroup(33)
	require.Equal(t, [2]uint32{32, 2}, [2]uint32{first, size})
	const id = 33<<entrySlabBits | 5
	e := tab.at(id)
	v := &version{rev: 1}
	tab.setHead(e, v)
	tab.setHead(e, nil) // as clear does before the entry is dropped
	tab.freeSlab(33)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			tab.dropHead(e, v)
			if tab.head(e) != nil {
				t.Error("a head on an entry of a freed slab")
				return
			}
		}
	}()
	require.Equal(t, uint32(33), tab.newSlab())
	<-done
	require.Same(t, e, tab.at(id), "the place's memory was not used again")
	require.Equal(t, uint32(id), e.id)
}
