package engine

import "unsafe"

// idTable maps keys, by their 64-bit hash, to the ids of their entries.
// Slots are 8 bytes: the top 32 bits of a key's hash (its tag) and its
// entry's id plus one (0: an empty slot). They hold integers: the
// collector has nothing to scan in them, and a table of millions of keys
// is a few hundred objects.
//
// The table is split by the top bits of the hash into parts of at most
// idPartMax slots (extendible hashing): the directory, indexed by the top
// depth bits, names each key's part, and a part that fills up splits in
// two by the next bit, without touching the others. So no insert moves
// more than one part's slots: growing a shard of a 10M-key store at once
// held its lock for milliseconds (5.2 to 5.8 ms doubling at 196,608 keys,
// BenchmarkIDTable_Insert with a table of one part: docs/engine.md), a
// split holds it for a part.
//
// Within a part, a key's home is the slot that the bits of its tag after
// the part's own depth name, read as a fraction of the part's length
// (home), and it sits in the first free slot from there on (linear
// probing, wrapping at the part's end). Keys whose tags are equal simply
// sit one after the other: a lookup compares the key of every slot whose
// tag matches. Splitting and growing place slots by their tags alone,
// never reading a key.
//
// A part's length is any number of slots, not a power of two: a part
// grows by a quarter, and the two halves of a split are sized for what
// each holds, so that parts are between 60% and 75% full. Hashes spread
// keys evenly, so parts fill at the same pace and grow or split at about
// the same time: with doubling parts, the whole table dropped to 37.5%
// full at once (48% at 1M keys: docs/engine.md, "Hash slots by
// fraction").
//
// An idTable is not safe for concurrent use; indexShard guards it.
type idTable struct {
	dir   []*idPart // 1<<depth of them, or none while the table is empty
	depth uint8     // the top bits of a hash that index dir
	n     int32     // ids held
}

// idPart is a share of an idTable's slots: those whose hashes start with
// the same depth bits.
type idPart struct {
	slots []uint64 // at least idTableMin of them
	n     int32    // slots in use
	depth uint8    // the top bits its hashes share; dir names it 1<<(table's depth-depth) times, in a row
}

const (
	// idTableMin is the fewest slots a part has.
	idTableMin = 8
	// A part grows (or splits) when an insert would fill more than
	// idTableFill/idTableFillDiv of it: linear probing at three quarters
	// full looks at 2.5 slots a hit and 8.5 a miss on average, and 8
	// slots share a cache line.
	idTableFill    = 3
	idTableFillDiv = 4
	// A part grows by idTableGrowDiv-th of its slots (at least
	// idTableMin), to 60% full; the halves of a split, and a reserved
	// part, are made idTableRoom/idTableRoomDiv times what they hold:
	// 60% full too.
	idTableGrowDiv = 4
	idTableRoom    = 5
	idTableRoomDiv = 3
	// A part shrinks to a quarter of its size when fewer than one slot
	// in idTableSparse is in use (then about a quarter full).
	idTableSparse = 16
	// tagBits are the bits of a hash a slot keeps: a part's depth and
	// home bits come from them.
	tagBits = 32
)

// Variables, for tests.
var (
	// idPartMax is the most slots a part grows to before it splits (a
	// part at or above it splits): 256 KiB, moved in some hundreds of
	// microseconds (BenchmarkIDTable_Insert's max-µs), a large object so
	// that the collector marks few (docs/engine.md, "Blocks of 256 KiB").
	idPartMax = 32768
	// idDirDepthMax caps the directory at 1<<16 parts (512 KiB), which
	// hold some 1,000M keys half full; past it, parts grow instead. Splitting parts
	// whose keys share a hash would otherwise double it without end.
	idDirDepthMax uint8 = 16
)

// slotOf packs a hash's tag and an id into a slot.
func slotOf(h uint64, id uint32) uint64 { return h&^0xffffffff | (uint64(id) + 1) }

// slotID returns the id a slot in use holds.
func slotID(s uint64) uint32 { return uint32(s) - 1 }

// part returns the part that holds hash h (or a slot, which keeps its
// hash's top bits).
func (t *idTable) part(h uint64) *idPart { return t.dir[h>>(64-t.depth)] } // >>64 is 0

// home returns the slot where a hash (or a slot) starts looking: the
// tag's bits after the part's depth, tagBits-depth of them, read as a
// fraction of the part's length (at idDirDepthMax, 16 bits: a part of
// more slots than 1<<16 spreads its homes apart).
func (p *idPart) home(h uint64) int {
	f := (h << p.depth) >> (64 - tagBits + p.depth)
	return int((f * uint64(len(p.slots))) >> (tagBits - p.depth))
}

// next returns the slot after i, the first after the last.
func (p *idPart) next(i int) int {
	if i++; i == len(p.slots) {
		return 0
	}
	return i
}

// dist returns how many slots from i on j is, wrapping at the end.
func (p *idPart) dist(i, j int) int {
	if d := j - i; d >= 0 {
		return d
	}
	return j - i + len(p.slots)
}

// roomFor returns the slots a part is made with to hold n ids: 60% full.
func roomFor(n int) int { return max(idTableMin, (n*idTableRoom+idTableRoomDiv-1)/idTableRoomDiv) }

// newIDPart returns an empty part of size slots, for hashes that share
// their top depth bits.
func newIDPart(size int, depth uint8) *idPart {
	return &idPart{slots: make([]uint64, size), depth: depth}
}

// find returns the entry of key, whose hash is h, or nil; tab resolves
// the ids.
func (t *idTable) find(tab *entryTable, h uint64, key string) *entry {
	if t.n == 0 {
		return nil
	}
	p := t.part(h)
	tag := h &^ 0xffffffff
	for i := p.home(h); ; i = p.next(i) {
		s := p.slots[i]
		if s == 0 {
			return nil
		}
		if s&^0xffffffff == tag {
			if e := tab.at(slotID(s)); tab.key(e) == key {
				return e
			}
		}
	}
}

// insert adds id under hash h; its key must not be in the table.
func (t *idTable) insert(h uint64, id uint32) {
	if t.dir == nil {
		t.dir = []*idPart{newIDPart(idTableMin, 0)}
	}
	p := t.part(h)
	for int(p.n+1)*idTableFillDiv > len(p.slots)*idTableFill {
		if len(p.slots) < idPartMax || p.depth >= idDirDepthMax {
			t.resize(h, p, len(p.slots)+max(idTableMin, len(p.slots)/idTableGrowDiv))
		} else {
			t.split(h, p)
		}
		p = t.part(h)
	}
	p.place(slotOf(h, id))
	p.n++
	t.n++
}

// prefetchHome starts loading the slot where an insert of hash h will
// start looking, so that the inserts of a batch wait for memory side by
// side rather than one after the other.
func (t *idTable) prefetchHome(h uint64) {
	if t.dir == nil {
		return
	}
	p := t.part(h)
	prefetchLine(unsafe.Pointer(&p.slots[p.home(h)]))
}

// place puts slot s in the first free slot from its home.
func (p *idPart) place(s uint64) {
	i := p.home(s)
	for p.slots[i] != 0 {
		i = p.next(i)
	}
	p.slots[i] = s
}

// delete takes id, under hash h, out of the table, and reports whether it
// was there.
func (t *idTable) delete(h uint64, id uint32) bool {
	if t.n == 0 {
		return false
	}
	p := t.part(h)
	want := slotOf(h, id)
	i := p.home(h)
	for p.slots[i] != want {
		if p.slots[i] == 0 {
			return false
		}
		i = p.next(i)
	}
	// Shift back the slots after i that may move to it: each one whose
	// home is not in (i, j], cyclically, is reachable from its home only
	// through i, which would now stop its lookups.
	for j := p.next(i); p.slots[j] != 0; j = p.next(j) {
		if k := p.home(p.slots[j]); p.dist(k, j) >= p.dist(i, j) {
			p.slots[i] = p.slots[j]
			i = j
		}
	}
	p.slots[i] = 0
	p.n--
	t.n--
	switch {
	case t.n == 0:
		t.dir, t.depth = nil, 0 // let every part go
	case int(p.n)*idTableSparse < len(p.slots) && len(p.slots) > idTableMin:
		t.resize(h, p, max(idTableMin, len(p.slots)/4))
	}
	return true
}

// resize moves p, the part of hash h, into a new part of size slots, in
// p's place in the directory.
func (t *idTable) resize(h uint64, p *idPart, size int) {
	q := newIDPart(size, p.depth)
	for _, s := range p.slots {
		if s != 0 {
			q.place(s)
		}
	}
	q.n = p.n
	t.replace(h, p, q, q)
}

// split moves p's slots (p the part of hash h) into two parts, by the bit
// of their hashes that follows p's depth, each made for what it takes
// (roomFor), doubling the directory first if p is the only part its
// entries name.
func (t *idTable) split(h uint64, p *idPart) {
	if p.depth == t.depth {
		dir := make([]*idPart, 2*len(t.dir))
		for i := range dir {
			dir[i] = t.dir[i>>1]
		}
		t.dir, t.depth = dir, t.depth+1
	}
	bit := uint64(1) << (63 - p.depth)
	high := 0
	for _, s := range p.slots {
		if s&bit != 0 {
			high++ // an empty slot is 0: never high
		}
	}
	lo, hi := newIDPart(roomFor(int(p.n)-high), p.depth+1), newIDPart(roomFor(high), p.depth+1)
	for _, s := range p.slots {
		switch {
		case s == 0:
		case s&bit == 0:
			lo.place(s)
			lo.n++
		default:
			hi.place(s)
			hi.n++
		}
	}
	t.replace(h, p, lo, hi)
}

// replace points the directory's entries for p, the part of hash h, at
// lo (the first half of them) and hi (the second); lo and hi are one part
// when p is resized. p's entries are those whose index shares h's top
// p.depth bits, in a row.
func (t *idTable) replace(h uint64, p, lo, hi *idPart) {
	span := 1 << (t.depth - p.depth)
	first := int(h>>(64-t.depth)) &^ (span - 1) // >>64 is 0
	for i := range span {
		if i < span/2 {
			t.dir[first+i] = lo
		} else {
			t.dir[first+i] = hi
		}
	}
}

// reserve makes room for n ids in an empty table: parts of fewer than
// idPartMax slots, each about 60% full once the n are in (the fullest,
// of a few hundred parts, some 5% fuller: 75% leaves room for more).
func (t *idTable) reserve(n int) {
	if t.n != 0 || n <= 0 {
		return
	}
	depth := uint8(0)
	for roomFor(n>>depth+1) >= idPartMax && depth < idDirDepthMax {
		depth++
	}
	size := roomFor(n>>depth + 1)
	t.dir, t.depth = make([]*idPart, 1<<depth), depth
	for i := range t.dir {
		t.dir[i] = newIDPart(size, depth)
	}
}
