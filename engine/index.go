package engine

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/livekv/livekv/pubsub"
)

// entry is one key's slot. The entry lives in the hash index (point reads)
// and in the ordered tree (ranges) while the key exists.
type entry struct {
	// kref and kg hold the key: a reference to its bytes (entryTable.key),
	// and its length, with the gone flag in the top bit (a search key's
	// length takes the whole word: entryTable.reprobe). The bytes are in
	// one of the arena's blocks, which kref names in its top 32 bits; a
	// compaction may point kref at a copy, so readers load it atomically.
	// The length never changes: every reference kref ever holds reads as
	// the same key.
	kref atomic.Uint64
	kg   atomic.Uint32

	// id names the entry in the DB's entryTable, for good.
	id uint32

	// vis is a copy of the newest committed version, which point reads and
	// scans load without a lock. The arena's block that holds its value
	// is the one its reference names (visible.block). With the key and
	// the id it fills the entry's 64 bytes, one line of the processor's
	// cache, all that a scan reads and all that prefetch fetches
	// (TestEntry_Layout). An entry holds no pointer: the collector has
	// nothing to scan in it. Its one pointer, the head of its versions,
	// is kept apart, with its slab's (entryTable.head).
	vis visible
}

// The gone flag, in entry.kg, is set when the entry leaves the index
// (deleted, or created by a transaction that rolled back), by
// ordered.remove under its lock, so that a pending ordered insert skips
// it, and a compaction leaves its key alone.
const (
	goneBit    = 1 << 31
	keyLenMask = goneBit - 1
)

// entries hands out the store's entries: ones that left the store and
// that nothing can reach any more (ordered.reclaim), or else new ones,
// taken from the table's slabs. A slab stays in the table while any of
// its entries is in use, waits in the limbo or in free, or is still to be
// handed out; once none is, it is freed.
// Guarded by DB.wmu (at Open, by the replay, which runs before anything
// else).
type entries struct {
	tab    *entryTable
	slab   uint32   // the place of the slab new entries come from
	next   int      // the next new entry's place in it (from 1); entrySlabMax: none
	live   []int32  // by place in the table: the slab's entries not dropped
	free   []uint32 // reclaimed entries, cleared, to be used again
	reused int64    // entries used again, for tests
}

func newEntries(tab *entryTable) entries {
	return entries{tab: tab, next: entrySlabMax}
}

// take returns a zeroed entry from the current slab, or a new slab.
func (es *entries) take() *entry {
	if es.next == entrySlabMax {
		es.slab, es.next = es.tab.newSlab(), 1
		if n := int(es.slab) + 1; len(es.live) < n {
			es.live = append(es.live, make([]int32, n-len(es.live))...)
		}
		es.live[es.slab] = slabEntries
	}
	e := es.tab.at(es.slab<<entrySlabBits | uint32(es.next))
	es.next++
	return e
}

// drop gives up the reclaimed entry id: it is neither in use nor kept,
// and its slab is freed once none of its entries is.
func (es *entries) drop(id uint32) {
	n := id >> entrySlabBits
	if es.live[n]--; es.live[n] == 0 {
		es.tab.freeSlab(n)
	}
}

// allocEntry returns an entry for key, whose bytes are in the arena's
// block kchunk (0: the key is empty): a reclaimed one if there is one,
// else a new one. db.wmu is held.
func (db *DB) allocEntry(key string, kchunk uint32) *entry {
	es := &db.entries
	if len(es.free) == 0 && db.order.waiting.Load() > 0 {
		// Keep no more than half the store's size, and at least a slab:
		// the slabs that hold no other entry in use are freed (after a
		// store shrinks).
		db.reclaimEntries(max(slabEntries, int(db.keys.Load()/2)))
	}
	var e *entry
	if n := len(es.free); n > 0 {
		e = es.tab.at(es.free[n-1])
		es.free = es.free[:n-1]
		if n > 1 {
			// The next new key's entry, a cache miss: loaded by then.
			var next [scanBatch]*entry
			next[0] = es.tab.at(es.free[n-2])
			prefetch(&next, 1)
		}
		es.reused++
		if poisonReclaimed {
			e.clear(es.tab)
		}
	} else {
		e = es.take()
	}
	e.setKey(es.tab.ref(kchunk, key), len(key))
	return e
}

// reclaimEntries adds the entries that nothing reaches any more to the
// free list, cleared, and keeps at most keep of them there: the others
// are given up. db.wmu is held.
func (db *DB) reclaimEntries(keep int) {
	es := &db.entries
	n := len(es.free)
	es.free = db.order.reclaim(es.free)
	// Those given up are cleared all the same: their slab may stay for
	// other entries, and the collector scans every entry of a slab.
	db.clearAll(es.free[n:])
	if len(es.free) > keep {
		for _, id := range es.free[keep:] {
			es.drop(id)
		}
		es.free = es.free[:keep]
	}
}

// poisonReclaimed, set by the package's tests, makes a reclaimed entry
// read as a key of its own with a value of its own until it is used
// again, so that a reader that could still reach it returns what no
// write ever stored.
var poisonReclaimed bool

// Poison key and value; no key a test writes starts with 0xff.
const (
	poisonKey   = "\xffreclaimed entry"
	poisonValue = "reclaimed entry"
)

// clearAll clears the reclaimed entries ids a batch at a time, each
// batch prefetched while the one before is cleared: the entries of
// deleted keys are scattered over the slabs, each a cache miss. db.wmu is
// held.
func (db *DB) clearAll(ids []uint32) {
	tab, a := db.entries.tab, db.vals
	committed := db.committed.Load()
	var next, prev [scanBatch]*entry
	np := 0
	for len(ids) > 0 || np > 0 {
		n := 0
		for ; n < len(next) && n < len(ids); n++ {
			next[n] = tab.at(ids[n])
		}
		prefetch(&next, n)
		// arena.mu a batch at a time: publish waits for it.
		a.mu.Lock()
		for _, e := range prev[:np] {
			a.release(e, committed)
		}
		a.mu.Unlock()
		for _, e := range prev[:np] {
			e.clear(tab)
			if poisonReclaimed {
				e.poison()
			}
		}
		prev, np, ids = next, n, ids[n:]
	}
}

// clear empties a reclaimed entry: no version, no key, no value;
// arena.release has taken its bytes out of the blocks' counts. Nothing reaches the entry now but, later, a pending release
// of a version it once held (pub.held), which compares its head with that
// version: every field is stored atomically.
func (e *entry) clear(tab *entryTable) {
	tab.setHead(e, nil)
	e.empty()
}

// empty takes e's key and visible version away, with atomic stores.
func (e *entry) empty() {
	e.kref.Store(0)
	e.kg.Store(0)
	e.vis.store(&version{kind: pubsub.Delete}, 0)
}

// poison makes a cleared entry read as the poison key, holding the poison
// value (poisonReclaimed).
func (e *entry) poison() {
	e.setKey(poisonKeyRef, len(poisonKey))
	e.vis.store(&version{value: poisonValue, rev: 1, createRev: 1, ver: 1, kind: pubsub.Put}, poisonValueRef)
}

// setKey makes e's key the n bytes that ref names.
func (e *entry) setKey(ref uint64, n int) {
	e.kref.Store(ref)
	e.kg.Store(uint32(n))
}

// setKeyFresh is setKey for an entry no other goroutine can reach yet
// (visible.storeFresh).
func (e *entry) setKeyFresh(ref uint64, n int) {
	*plainU(&e.kref) = ref
	*plainU32(&e.kg) = uint32(n)
}

func (e *entry) gone() bool { return e.kg.Load()&goneBit != 0 }

func (e *entry) markGone() { e.kg.Or(goneBit) }

const indexShards = 64

// index maps keys to entries. It is sharded so that readers on many cores do
// not contend on one lock; writers are already serialised by DB.wmu.
type index struct {
	seed   maphash.Seed
	tab    *entryTable
	shards [indexShards]indexShard
}

type indexShard struct {
	mu sync.RWMutex // guards t
	// t is keyed by the key's hash, and holds entries' ids: the collector
	// has nothing to mark in it, and growing it moves integers without
	// reading a key.
	t     idTable
	reads atomic.Int64 // lookups by readers, for Stats
	// A shard is 64 bytes, a cache line: the array is not aligned to
	// lines, so one shard may straddle two, but neighbours never share
	// more than one (TestIndexShard_Size).
}

func newIndex(tab *entryTable) *index {
	return &index{seed: maphash.MakeSeed(), tab: tab}
}

// reserve sizes the shards of an empty index for about n keys, so that
// loading them does not grow the maps step by step.
func (ix *index) reserve(n int) {
	per := n/indexShards + n/indexShards/16 // the shards' sizes vary a little
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		s.t.reserve(per)
		s.mu.Unlock()
	}
}

func (ix *index) shard(key string) (*indexShard, uint64) {
	h := maphash.String(ix.seed, key)
	return &ix.shards[h%indexShards], h
}

// get returns key's entry, or nil. Only writers call it, holding DB.wmu:
// an entry leaves the index only under it.
func (ix *index) get(key string) *entry {
	s, h := ix.shard(key)
	s.mu.RLock()
	e := s.t.find(ix.tab, h, key)
	s.mu.RUnlock()
	return e
}

// read is get for a reader, counted in Stats. It returns with the shard
// read-locked: the caller reads the entry, then unlocks s.mu. Until then
// the entry cannot leave the index, and so cannot be used again for
// another key (ordered.reclaim).
func (ix *index) read(key string) (*indexShard, *entry) {
	s, h := ix.shard(key)
	s.mu.RLock()
	s.reads.Add(1) // on the shard's line, which RLock has just touched
	return s, s.t.find(ix.tab, h, key)
}

func (ix *index) gets() int64 {
	var n int64
	for i := range ix.shards {
		n += ix.shards[i].reads.Load()
	}
	return n
}

// put adds e, whose key must not be in the index.
func (ix *index) put(e *entry) {
	s, h := ix.shard(ix.tab.key(e))
	s.mu.Lock()
	s.t.insert(h, e.id)
	s.mu.Unlock()
}

// putAll puts es, whose keys must not be in the index, taking each
// shard's lock once: inserts under one lock do not wait for each other's
// cache misses, as each unlock's atomic would make them. by is the
// caller's, used again from one call to the next: the entries sorted by
// shard, so that a snapshot's load allocates nothing a batch.
func (ix *index) putAll(es []*entry, by *[indexShards][]hashedEntry) {
	for i := range by {
		by[i] = by[i][:0]
	}
	for _, e := range es {
		h := maphash.String(ix.seed, ix.tab.key(e))
		by[h%indexShards] = append(by[h%indexShards], hashedEntry{h, e})
	}
	for i := range by {
		if len(by[i]) == 0 {
			continue
		}
		s := &ix.shards[i]
		s.mu.Lock()
		hs := by[i]
		for j, he := range hs {
			if j+putAhead < len(hs) {
				s.t.prefetchHome(hs[j+putAhead].h)
			}
			s.t.insert(he.h, he.e.id)
		}
		s.mu.Unlock()
	}
}

// putAhead is how many inserts ahead putAll prefetches a slot.
const putAhead = 8

type hashedEntry struct {
	h uint64
	e *entry
}

// remove takes e out of the index, if it is there.
func (ix *index) remove(e *entry) {
	s, h := ix.shard(ix.tab.key(e))
	s.mu.Lock()
	s.t.delete(h, e.id)
	s.mu.Unlock()
}
