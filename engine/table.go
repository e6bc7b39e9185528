package engine

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// entrySlabBits is log2 of entrySlabMax.
const entrySlabBits = 12

// entrySlabMax is how many places a slab has, and so how many ids: the
// low entrySlabBits of an entry's id are its place in its slab.
const entrySlabMax = 1 << entrySlabBits

// slabEntries is how many entries a slab holds: one at each place but the
// first (no id names place 0), whose room keeps the entries on lines, so
// that a slab is 256 KiB, a whole number of the allocator's pages.
const slabEntries = entrySlabMax - 1

// entrySlab is a slab of entries (256 KiB), which the collector marks as
// one object, or a part of one (newSlab): the larger the objects, the less
// marking grows with the keys (docs/engine.md, "Blocks of 256 KiB"). It
// holds no pointer, so the collector scans nothing in it: the heads of its
// entries' versions are kept apart, by its place (slabHeads).
type entrySlab struct {
	_       [64]byte           // the entries start on a line; place 0 is none
	entries [slabEntries]entry // the entry at place i is entries[i-1]
}

// slabHeads is what the table keeps for a slab beside its entries.
type slabHeads struct {
	// heads holds the heads of the versions (entryTable.head) of those of
	// the slab's entries that have one, or is nil while none does, as for
	// nearly every slab of a store that no snapshot reads below. It is
	// a table sized for the heads set, not an array by place: a slab
	// written now and then holds a few heads at a time, and an array of
	// all of them would cost the collector 8 bytes a key to scan in every
	// slab written since its last visit (docs/engine.md, "Heads in
	// tables"). A write that gives one of the slab's entries a version
	// object sets its head (entryTable.setHead), and entryTable.idleHeads
	// takes the table back once none was set since its last visit and
	// all are nil.
	heads atomic.Pointer[headSlot]
	// touched says a head was set since idleHeads last looked, and used
	// is how many of the table's slots hold a place; guarded by DB.wmu.
	touched bool
	used    int32
}

// headsPage holds the slabHeads of headsPageSlabs slabs, by place in the
// table; a page is never moved nor freed, so that a reader finds a slab's
// heads without a lock (entryTable.slabHeads).
type headsPage [headsPageSlabs]slabHeads

const headsPageSlabs = 1024

// headSlot is a slot of a slab's table of heads: an entry's place in the
// slab (0: none yet) and the head of its versions (nil once it went).
// A table is one array of slots: its first holds the number of the
// others, a power of two, in place. A slot whose head is nil may be
// given to another place (setHead): a place is in one slot at most, and
// a reader that finds the place checks it again after it loads the head
// (head). A table of up to headScan slots is searched whole, and its
// slots are given in any order. A larger one is open addressing by
// place, with linear probing; there a slot never becomes empty again,
// so a probe for a place that has a head never meets an empty slot
// before it, and only a slot on a place's way is given to it.
type headSlot struct {
	v     atomic.Pointer[version]
	place atomic.Uint32
}

// headScan is the most slots of a table searched whole: four lines of the
// processor's cache.
const headScan = 16

// newHeads returns a table of size slots, a power of two.
func newHeads(size uint32) *headSlot {
	t := make([]headSlot, size+1)
	t[0].place.Store(size)
	return &t[0]
}

// slots returns how many slots the table h has.
func (h *headSlot) slots() uint32 { return h.place.Load() }

// slot returns the table h's slot i, from 0.
func (h *headSlot) slot(i uint32) *headSlot {
	return (*headSlot)(unsafe.Add(unsafe.Pointer(h), uintptr(i+1)*unsafe.Sizeof(headSlot{})))
}

// probe returns place's slot in the table h, if it has one.
func (h *headSlot) probe(place uint32) (x *headSlot, found bool) {
	x, found, _ = h.find(place, false)
	return x, found
}

// claim returns the slot of the table h for setHead to give place a
// head in: place's own if it has one (found), else one whose head is nil
// (a larger table's on place's way), else an empty one (fresh), else nil:
// the table is full.
func (h *headSlot) claim(place uint32) (x *headSlot, found, fresh bool) {
	return h.find(place, true)
}

// find is probe, and claim if idle.
func (h *headSlot) find(place uint32, idle bool) (x *headSlot, found, fresh bool) {
	var nilHead, empty *headSlot
	n := h.slots()
	if n <= headScan {
		for i := range n {
			switch x := h.slot(i); x.place.Load() {
			case place:
				return x, true, false
			case 0:
				empty = cmp.Or(empty, x)
			default:
				if nilHead == nil && idle && x.v.Load() == nil {
					nilHead = x
				}
			}
		}
	} else {
		for i := (place * 0x9E3779B1 >> 19) & (n - 1); ; i = (i + 1) & (n - 1) {
			x := h.slot(i)
			if p := x.place.Load(); p == place {
				return x, true, false
			} else if p == 0 {
				empty = x
				break
			}
			if nilHead == nil && idle && x.v.Load() == nil {
				nilHead = x
			}
		}
	}
	switch {
	case !idle:
		return nil, false, false
	case nilHead != nil:
		return nilHead, false, false
	default:
		return empty, false, empty != nil
	}
}

// allNil reports whether every head in the table h is nil.
func (h *headSlot) allNil() bool {
	for i := range h.slots() {
		if h.slot(i).v.Load() != nil {
			return false
		}
	}
	return true
}

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
//
// The table also resolves the references that entries hold to the bytes
// of their keys and visible values, (block, offset) in one word: blocks
// are the arena's chunks and the values too large for one (chunks, by
// the arena's chunk ids), and the keys of search keys (probeKeys, with
// probeBit set). An entry holds no pointer to them, so the collector has
// nothing to follow in the slabs for them.
type entryTable struct {
	slabs atomic.Pointer[slabList]

	// chunks holds the base of each of the arena's blocks, by id; the
	// arena sets it under arena.mu.
	chunks blocks

	mu     sync.Mutex // guards growing the table, freeing slabs, unused, probes and growing probeKeys
	unused []uint32   // places in the table whose slab was freed
	probes []uint32   // search keys not in use

	// probeKeys holds the bytes of search keys, by probe number, in
	// pages of entrySlabMax: a probe number's page is its slab's, and a
	// page is never copied, so the reader that holds a search key sets
	// its bytes without a lock. Page 0 holds the poison key and value.
	probeKeys atomic.Pointer[[]*probePage]

	// headSets counts the heads set since idleHeads last ran, and
	// headCursor is the place of the next slab it visits; guarded by
	// DB.wmu.
	headSets   int
	headCursor uint32
	headVisit  []*slabHeads // idleHeads's slabs to visit, kept for the next

	// headsLately says a head was set to a version since the visit at
	// rest was last armed, and atRest, if set, is called with a head set
	// while restArmed is false, which it sets; guarded by DB.wmu. The
	// DB's visit at rest (DB.headsAtRest) lets the slabs' idle heads go
	// once writes stop, which idleHeads, run by writes, would not.
	headsLately bool
	atRest      func()
	restArmed   bool

	// headPages holds the slabs' heads, by place; it grows with the
	// table, under mu, before a slab that needs a new page is published.
	headPages atomic.Pointer[[]*headsPage]
}

type probePage [entrySlabMax]atomic.Pointer[byte]

// probeKey returns the base of the search key numbered n.
func (t *entryTable) probeKey(n uint32) *atomic.Pointer[byte] {
	return &(*t.probeKeys.Load())[n>>entrySlabBits][n&(entrySlabMax-1)]
}

// probeBit, in a block's id, says that the block is a probe's key
// (entryTable.probeKeys) rather than the arena's.
const probeBit = 1 << 31

// The poison key and value (poisonReclaimed) are the probe numbers 0 and 1.
const (
	poisonKeyRef   = uint64(probeBit) << 32
	poisonValueRef = uint64(probeBit|1) << 32
)

func newEntryTable() *entryTable {
	t := &entryTable{}
	t.slabs.Store(new(slabList))
	t.headPages.Store(new([]*headsPage))
	t.chunks.list.Store(&blockList{})
	t.chunks.set(0, nil) // id 0: no block (an empty key or value)
	page := new(probePage)
	page[0].Store(unsafe.StringData(poisonKey))
	page[1].Store(unsafe.StringData(poisonValue))
	t.probeKeys.Store(&[]*probePage{page})
	return t
}

// blocks is a list of the bases of blocks of bytes, by id. Readers load
// a base without a lock; one writer at a time, under its caller's lock,
// sets one or adds some.
type blocks struct {
	list atomic.Pointer[blockList]
}

type blockList []atomic.Pointer[byte]

// base returns the base of block id (nil: none now).
func (b *blocks) base(id uint32) *byte { return (*b.list.Load())[id].Load() }

// set makes p the base of block id, growing the list if need be.
func (b *blocks) set(id uint32, p *byte) {
	l := *b.list.Load()
	if int(id) >= len(l) {
		nl := make(blockList, max(int(id)+1, 2*len(l), 64))
		for i := range l {
			nl[i].Store(l[i].Load())
		}
		b.list.Store(&nl)
		l = nl
	}
	l[id].Store(p)
}

// base returns the base of the block named id: a probe's key, or the
// arena's.
func (t *entryTable) base(id uint32) *byte {
	if id&probeBit != 0 {
		return t.probeKey(id &^ probeBit).Load()
	}
	return t.chunks.base(id)
}

// ref returns the reference to s, whose bytes are in block id (0: s is
// empty, and so is the reference).
func (t *entryTable) ref(id uint32, s string) uint64 {
	if id == 0 {
		return 0
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(t.base(id)))
	return uint64(id)<<32 | uint64(off)
}

// bytes returns the n bytes that ref names; the block must hold them
// until the caller is done with them.
func (t *entryTable) bytes(ref uint64, n int) string {
	if n == 0 {
		return ""
	}
	return at(t.base(uint32(ref>>32)), ref, n)
}

// at returns the n bytes at ref's offset in the block based at p.
func at(p *byte, ref uint64, n int) string {
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(p), uint32(ref))), n)
}

// key returns e's key. A compaction may move it meanwhile: the block is
// read between two loads of the reference, and the key read again if it
// moved. The block cannot be another's then: it is used again only once
// no entry's key is in it, and this one's was at both loads (were it
// moved away and back, the bytes are still the key's).
func (t *entryTable) key(e *entry) string {
	for {
		r := e.kref.Load()
		g := e.kg.Load()
		p := t.base(uint32(r >> 32))
		if e.kref.Load() != r || e.kg.Load() != g {
			continue // moved, or (a reader that should not be here) cleared
		}
		// A search key's length takes all 32 bits (entryTable.reprobe):
		// only an entry's has the gone flag on top.
		if n := int(g & (keyLenMask | uint32(r>>63)<<31)); n == 0 {
			return ""
		} else if p != nil {
			return at(p, r, n)
		}
	}
}

// at returns the entry named id.
func (t *entryTable) at(id uint32) *entry { return t.load().at(id) }

// load returns the table as it is now: it resolves every id in use now,
// and every id a copy of the tree pinned now holds, until it is unpinned.
func (t *entryTable) load() slabList { return *t.slabs.Load() }

// slabList is the table's slabs, by place.
type slabList []*entrySlab

// at returns the entry named id.
//
// It computes the entry's address from its slab's without loading
// anything from the slab: &slab.entries[i] would make the compiler check
// the slab pointer for nil with a load from the slab's first line, which
// is on another page than nearly all of its entries, so that every entry
// reached (a scan's, a read's) would cost two pages' translations and
// two lines, one of them for nothing. The checks it makes instead (a
// slab, and a place, which is never 0) are on registers.
func (l slabList) at(id uint32) *entry {
	s, place := l[id>>entrySlabBits], id&(entrySlabMax-1)
	if s == nil || place == 0 {
		panic("engine: an id that names no entry")
	}
	return (*entry)(unsafe.Add(unsafe.Pointer(s), entriesOffset+uintptr(place-1)*unsafe.Sizeof(entry{})))
}

// entriesOffset is where a slab's entries start in it.
const entriesOffset = unsafe.Offsetof(entrySlab{}.entries)

// newSlab adds a slab to the table, its entries named, and returns its
// place: a freed slab's, or a new one at the end.
func (t *entryTable) newSlab() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	slabs := *t.slabs.Load()
	var n uint32
	if k := len(t.unused); k > 0 {
		n = t.unused[k-1]
		t.unused = t.unused[:k-1]
	} else {
		n = uint32(len(slabs))
		if n >= 1<<(32-entrySlabBits)-1 {
			// The last slab's last id would be 2^32-1, which idTable
			// cannot hold (it keeps an id plus one).
			panic("engine: more than 2^32-2048 entries")
		}
		slabs = append(slabs, nil)
		if pages := *t.headPages.Load(); int(n/headsPageSlabs) >= len(pages) {
			pages = append(slices.Clip(pages), new(headsPage))
			t.headPages.Store(&pages)
		}
	}
	s := slabMemory(slabs, n)
	if s.entries[0].id == 0 {
		// Memory never used: nothing reaches it yet.
		for i := range s.entries {
			s.entries[i].id = n<<entrySlabBits | uint32(i+1)
		}
	} else {
		s.reuse()
	}
	slabs[n] = s
	t.slabs.Store(&slabs)
	return n
}

// Slabs share their allocation with others as the table grows: the
// collector marks an object for the price of a few hundred bytes' scan
// whatever its size (docs/engine.md, "Slabs in groups"), so that with one
// object a slab a store of 10M keys had it mark some 2,400 objects for
// its slabs alone, more than for everything else. A place's group is
// fixed by the place: alone below 32, then groups of 2, 4 and 8 slabs,
// and of maxSlabGroup (4 MiB) from place 256 (a store of about 1M keys)
// on, each aligned to its size, so that a small store takes no more
// memory than it uses, and a growing one at most a group less one slab.
// One that shrinks keeps the memory of freed places while another slab
// of their group lives (slabMemory).
const maxSlabGroup = 16

// slabGroup returns the first place of the group of the slab at place
// n, and how many places it has.
func slabGroup(n uint32) (first, size uint32) {
	size = 1
	for size < maxSlabGroup && 32*size <= n {
		size *= 2
	}
	return n &^ (size - 1), size
}

// slabMemory returns the memory for a new slab at place n: a slab of its
// group's allocation if another slab of the group is in slabs (the
// places of freed slabs in it are nil), or of a new one. An allocation is
// freed by the collector once none of its slabs is in the table; until
// then, the memory of its freed places is kept, and used again first
// (newSlab takes a freed place before a new one). The memory of a place
// is always at the same offset in its group's allocation, so memory used
// before holds a slab freed at the same place: see entrySlab.reuse.
func slabMemory(slabs slabList, n uint32) *entrySlab {
	first, size := slabGroup(n)
	const slabSize = int(unsafe.Sizeof(entrySlab{}))
	for i := first; i < first+size && int(i) < len(slabs); i++ {
		if s := slabs[i]; s != nil && i != n {
			base := unsafe.Add(unsafe.Pointer(s), -int(i-first)*slabSize)
			return (*entrySlab)(unsafe.Add(base, int(n-first)*slabSize))
		}
	}
	if size == 1 {
		return new(entrySlab)
	}
	return &make([]entrySlab, size)[n-first]
}

// reuse readies the memory of a slab freed at the same place for a new
// one. Its entries' ids are already theirs. Nothing reaches its entries
// but, later, a pending release of a version one of them once held
// (pub.held), which reads the entry's id and its atomic fields (as it
// may of an entry used again: entry.clear): so the ids are left as
// they are, and the rest is emptied with atomic stores. Its heads were
// taken back by freeSlab.
func (s *entrySlab) reuse() {
	for i := range s.entries {
		s.entries[i].empty()
	}
}

// freeSlab takes the slab at place n out of the table, for the collector
// to free with the rest of its group (slabMemory): none of its entries is
// in use, nor can any be reached but as entrySlab.reuse says.
func (t *entryTable) freeSlab(n uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	(*t.slabs.Load())[n] = nil
	t.unused = append(t.unused, n)
	// Clean for the slab that takes the place next: DB.wmu is held, and
	// no reader looks at the heads of entries it cannot reach.
	h := t.slabHeadsAt(n)
	h.heads.Store(nil)
	h.touched, h.used = false, 0
}

// slabHeads returns the heads of the slab that holds the entry named id.
func (t *entryTable) slabHeads(id uint32) *slabHeads { return t.slabHeadsAt(id >> entrySlabBits) }

// slabHeadsAt returns the heads of the slab at place n.
func (t *entryTable) slabHeadsAt(n uint32) *slabHeads {
	return &(*t.headPages.Load())[n/headsPageSlabs][n%headsPageSlabs]
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
		slab := t.load()[n]
		pages := append(*t.probeKeys.Load(), new(probePage))
		t.probeKeys.Store(&pages)
		first := uint32(len(pages)-1) << entrySlabBits
		for i := slabEntries; i >= 1; i-- {
			// Each has a probe number, its key's block.
			slab.entries[i-1].kref.Store(uint64(probeBit|first|uint32(i)) << 32)
			t.probes = append(t.probes, n<<entrySlabBits|uint32(i))
		}
		k = len(t.probes)
	}
	id := t.probes[k-1]
	t.probes = t.probes[:k-1]
	t.mu.Unlock()
	e := t.at(id)
	t.reprobe(e, key)
	return e
}

// reprobe makes the search key e, which probe returned, read as key. A
// range's bound may be longer than any key (KeyAfter of the longest is
// 2 GiB), so a search key's length takes all 32 bits of kg; one of 4 GiB
// or more reads as its first 4 GiB - 1 bytes, which order against every
// key as the whole bound does.
func (t *entryTable) reprobe(e *entry, key string) {
	t.probeKey(uint32(e.kref.Load()>>32) &^ probeBit).Store(unsafe.StringData(key))
	e.kg.Store(uint32(min(uint64(len(key)), lenMask)))
}

// unprobe gives back a search key that probe returned.
func (t *entryTable) unprobe(e *entry) {
	t.probeKey(uint32(e.kref.Load()>>32) &^ probeBit).Store(nil) // keeps no key in memory
	t.mu.Lock()
	t.probes = append(t.probes, e.id)
	t.mu.Unlock()
}

// place returns e's place in its slab, from 1.
func (e *entry) place() int { return int(e.id & (entrySlabMax - 1)) }

// head returns the newest version of e, possibly written by a transaction
// that has not committed yet; nil when the committed version in vis is
// the newest and no snapshot reads below it (see version). Writers
// (holding DB.wmu) set it (entryTable.setHead), rollbacks and Abandon put
// back what was there, and DB.release takes it back to nil
// (entryTable.dropHead).
//
// A reader that loads e's visible copy and then its head finds a head at
// least as new as that copy: the write stored its version in the heads
// before the commit's visible stores, and a slab's heads are let go only
// when all are nil, which a head a snapshot still reads never is.
func (t *entryTable) head(e *entry) *version {
	h := t.slabHeads(e.id).heads.Load()
	if h == nil {
		return nil
	}
	place := uint32(e.place())
	for {
		x, ok := h.probe(place)
		if !ok {
			return nil
		}
		v := x.v.Load()
		if x.place.Load() == place {
			return v
		}
		// The slot went to another place, as its head was nil, between
		// the two loads: probe again.
	}
}

// setHead makes v the head of e's versions; DB.wmu is held.
func (t *entryTable) setHead(e *entry, v *version) {
	s := t.slabHeads(e.id)
	place := uint32(e.place())
	h := s.heads.Load()
	if h == nil && v == nil {
		return
	}
	if h != nil {
		x, found, fresh := h.claim(place)
		switch {
		case found:
			x.v.Store(v)
			t.headSet(s, v)
			return
		case v == nil:
			return
		case x != nil && !fresh:
			// A slot whose head is nil, given to place: a reader of its
			// old place finds the place changed (head).
			x.place.Store(place)
			x.v.Store(v)
			t.headSet(s, v)
			return
		case x != nil && (h.slots() <= headScan || 4*(s.used+1) <= 3*int32(h.slots())):
			x.v.Store(v)
			x.place.Store(place)
			s.used++
			t.headSet(s, v)
			return
		}
	}
	h = t.regrow(s, h)
	x, _, _ := h.claim(place)
	x.v.Store(v)
	x.place.Store(place)
	s.used++
	t.headSet(s, v)
}

// regrow gives slab s a new table of heads with room for one more, made
// from the heads set in old (nil: none), and returns it; DB.wmu is held.
// The new table is at most half full.
func (t *entryTable) regrow(s *slabHeads, old *headSlot) *headSlot {
	type copied struct {
		from, to *headSlot
		v        *version
	}
	var set []copied
	if old != nil {
		for i := range old.slots() {
			if x := old.slot(i); x.v.Load() != nil {
				set = append(set, copied{from: x, v: x.v.Load()})
			}
		}
	}
	size := uint32(4)
	for size < 2*uint32(len(set)+1) {
		size *= 2
	}
	h := newHeads(size)
	for i, c := range set {
		place := c.from.place.Load()
		set[i].to, _, _ = h.claim(place) // a fresh slot: none in h is nil
		set[i].to.v.Store(c.v)
		set[i].to.place.Store(place)
	}
	s.used = int32(len(set))
	s.heads.Store(h)
	// A dropHead may have taken a head to nil in old after it was read
	// here, and found old still the slab's table: take it to nil here
	// too. (One that finds the new table drops it there itself.)
	for _, c := range set {
		if c.from.v.Load() != c.v {
			c.to.v.CompareAndSwap(c.v, nil)
		}
	}
	return h
}

// headSet counts a head set to v in slab s, and visits slabs for idle
// heads every idleHeadsEvery heads set.
func (t *entryTable) headSet(s *slabHeads, v *version) {
	if v == nil {
		return
	}
	if !s.touched {
		s.touched = true
	}
	if t.headsLately = true; !t.restArmed && t.atRest != nil {
		t.restArmed = true
		t.atRest()
	}
	if t.headSets++; t.headSets >= idleHeadsEvery {
		t.headSets = 0
		t.idleHeads(idleHeadsSlabs)
	}
}

// dropHead takes the head of e's versions back to nil if it is still v;
// any goroutine may call it. A slab's table of heads is let go only when
// all are nil: if it went, v is not there. If setHead gave the slab a
// new table meanwhile, v is taken to nil in it as well (regrow).
func (t *entryTable) dropHead(e *entry, v *version) {
	s := t.slabHeads(e.id)
	place := uint32(e.place())
	for h := s.heads.Load(); h != nil; {
		if x, ok := h.probe(place); ok {
			x.v.CompareAndSwap(v, nil)
		}
		next := s.heads.Load()
		if next == h {
			return
		}
		h = next
	}
}

// After every idleHeadsEvery heads set, idleHeads visits the next
// idleHeadsSlabs slabs: a pass over the slabs of a store of 1M keys
// (245 slabs) every 4,000 writes or so, of 10M every 40,000. A visit
// costs a look at the slab's slabHeads, and at its table of heads if none
// was set since the last. Variables, for tests, which visit far more
// often.
var (
	idleHeadsEvery = 1024
	idleHeadsSlabs = 64
)

// idleHeads visits the next n slabs (each once at most), from headCursor
// on, and lets the heads of each go if none was set since its last visit
// and all are nil; the slab gets them again, new, when a head is next
// set. A slab written all the time keeps them, so that they are not made
// again and again.
// DB.wmu is held: no head is set meanwhile, so heads found nil stay so
// (dropHead only takes them to nil).
func (t *entryTable) idleHeads(n int) { t.visitHeads(n, false) }

// restHeads visits every slab as idleHeads does, for a store whose
// writes stopped: it lets go the heads of each slab whose heads are all
// nil, whether or not one was set since its last visit (touched), since
// none was for a while (DB.headsAtRest). It reports whether it kept a
// table for a head still set (a snapshot reads below it, or its commit
// waits to be published). DB.wmu is held.
func (t *entryTable) restHeads() (kept bool) {
	t.headCursor = 0
	return t.visitHeads(len(t.load()), true)
}

// visitHeads is idleHeads, and restHeads if rest; it reports whether it
// kept a table for a head still set.
func (t *entryTable) visitHeads(n int, rest bool) (kept bool) {
	// The slabs to visit are read under t.mu: a reader that makes a slab
	// of search keys may put it in a freed place meanwhile (newSlab); its
	// heads, which freeSlab left clean, stay nil. Slabs are freed, and
	// heads and flags change, only under DB.wmu.
	visit := t.headVisit[:0]
	t.mu.Lock()
	slabs := t.load()
	for range min(n, len(slabs)) {
		if int(t.headCursor) >= len(slabs) {
			t.headCursor = 0
		}
		if slabs[t.headCursor] != nil {
			visit = append(visit, t.slabHeadsAt(t.headCursor))
		}
		t.headCursor++
	}
	t.mu.Unlock()
	for _, s := range visit {
		touched := s.touched && !rest
		s.touched = false
		if touched {
			continue
		}
		if h := s.heads.Load(); h != nil {
			if !h.allNil() {
				kept = true
				continue
			}
			s.heads.Store(nil)
			s.used = 0
		}
	}
	clear(visit)
	t.headVisit = visit[:0]
	return kept
}
