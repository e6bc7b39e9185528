package engine

import (
	"sync"
	"sync/atomic"
)

// entrySlabBits is log2 of entrySlabMax.
const entrySlabBits = 10

// entrySlabMax is how many entries a slab holds (80 KiB).
const entrySlabMax = 1 << entrySlabBits

// entrySlab is a slab of entries, which the collector marks as one object.
type entrySlab [entrySlabMax]entry

// entryTable holds every entry of the store in slabs, and names each by
// a number, its id: its slab's place in the table, then its own place in
// the slab. The index and the ordered tree hold ids, not pointers, so
// that the collector has nothing to mark in their maps and nodes (see
// docs/engine.md, "Entries by number"). Readers resolve an id with at,
// without a lock. The table grows by appending past the length that
// readers know, and publishes the longer slice; a place is written in
// place only when its slab is freed or a new slab takes it, and no
// reader looks there then: none of a freed slab's entries can be reached
// (they were reclaimed: see ordered.reclaim), and the ids of a new slab's
// entries reach readers only through the index and the tree, under
// their locks.
type entryTable struct {
	slabs atomic.Pointer[slabList]

	mu     sync.Mutex // guards growing the table, freeing slabs, unused and probes
	unused []uint32   // places in the table whose slab was freed
	probes []uint32   // search keys not in use
}

func newEntryTable() *entryTable {
	t := &entryTable{}
	t.slabs.Store(new(slabList))
	return t
}

// at returns the entry named id.
func (t *entryTable) at(id uint32) *entry { return t.load().at(id) }

// load returns the table as it is now: it resolves every id in use now,
// and every id a copy of the tree pinned now holds, until it is unpinned.
func (t *entryTable) load() slabList { return *t.slabs.Load() }

// slabList is the table's slabs, by place.
type slabList []*entrySlab

// at returns the entry named id.
func (l slabList) at(id uint32) *entry {
	return &l[id>>entrySlabBits][id&(entrySlabMax-1)]
}

// newSlab adds a slab to the table, its entries named, and returns its
// place: a freed slab's, or a new one at the end.
func (t *entryTable) newSlab() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := new(entrySlab)
	slabs := *t.slabs.Load()
	var n uint32
	if k := len(t.unused); k > 0 {
		n = t.unused[k-1]
		t.unused = t.unused[:k-1]
	} else {
		n = uint32(len(slabs))
		if n >= 1<<(32-entrySlabBits) {
			panic("engine: more than 2^32 entries")
		}
		slabs = append(slabs, nil)
	}
	for i := range s {
		s[i].id = n<<entrySlabBits | uint32(i)
	}
	slabs[n] = s
	t.slabs.Store(&slabs)
	return n
}

// freeSlab takes the slab at place n out of the table, for the collector
// to free: none of its entries is in use, nor can any be reached.
func (t *entryTable) freeSlab(n uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	(*t.slabs.Load())[n] = nil
	t.unused = append(t.unused, n)
}

// probe returns an entry, in the table but not in the store, that reads
// as key: a search key for the tree, whose comparisons resolve ids. The
// caller gives it back with unprobe.
func (t *entryTable) probe(key string) *entry {
	t.mu.Lock()
	k := len(t.probes)
	if k == 0 {
		t.mu.Unlock()
		n := t.newSlab() // a slab of probes, never freed
		t.mu.Lock()
		for i := entrySlabMax - 1; i >= 0; i-- {
			t.probes = append(t.probes, n<<entrySlabBits|uint32(i))
		}
		k = len(t.probes)
	}
	id := t.probes[k-1]
	t.probes = t.probes[:k-1]
	t.mu.Unlock()
	e := t.at(id)
	e.setKey(key)
	return e
}

// unprobe gives back a search key that probe returned.
func (t *entryTable) unprobe(e *entry) {
	e.kdata.Store(nil) // keeps no key in memory
	t.mu.Lock()
	t.probes = append(t.probes, e.id)
	t.mu.Unlock()
}
