package engine

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/livekv/livekv/pubsub"
)

// entry is one key's slot. The entry lives in the hash index (point reads)
// and in the ordered tree (ranges) while the key exists.
type entry struct {
	// kdata and kg hold the key: its bytes, and its length, with the gone
	// flag in the top bit. The bytes are in one of the arena's chunks
	// (kchunk), or allocated on their own; a compaction may point kdata
	// at a copy, so readers load it atomically. The length never changes:
	// every pointer kdata ever holds reads as the same key.
	kdata atomic.Pointer[byte]
	kg    atomic.Uint32

	// chunk is the arena's chunk that holds the value in vis (0: none);
	// it changes with vis, under DB.pub.mu and arena.mu. A compaction
	// loads it without them to pass over entries it has nothing to move.
	chunk atomic.Uint32

	// vis is a copy of the newest committed version, which point reads and
	// scans load without a lock. With the key it fills the entry's first
	// 64 bytes, all that a scan reads and all that prefetch fetches
	// (TestEntry_Layout).
	vis visible

	// head is the newest version, possibly written by a transaction that
	// has not committed yet; nil when the committed version in vis is the
	// newest and no snapshot reads below it (see version). Writers
	// (holding DB.wmu) store it, rollbacks and Abandon put back what was
	// there, and DB.release takes it back to nil.
	head atomic.Pointer[version]

	// kchunk is the arena's chunk that holds the key's bytes (0: none);
	// it changes under arena.mu; loaded like chunk.
	kchunk atomic.Uint32
}

// The gone flag, in entry.kg, is set when the entry leaves the index
// (deleted, or created by a transaction that rolled back), by
// ordered.remove under its lock, so that a pending ordered insert skips
// it, and a compaction leaves its key alone.
const (
	goneBit    = 1 << 31
	keyLenMask = goneBit - 1
)

// newEntry returns an entry for key, whose bytes are in the arena's chunk
// kchunk (0: none), allocated on its own: for a search key. The store's
// entries come from DB.allocEntry.
func newEntry(key string, kchunk uint32) *entry {
	e := &entry{}
	e.kchunk.Store(kchunk)
	e.setKey(key)
	return e
}

// entrySlabMax is how many entries the largest slab holds (80 KiB).
const entrySlabMax = 1024

// entries hands out the store's entries: ones that left the store and
// that nothing can reach any more (ordered.reclaim), or else new ones,
// taken from slabs, so that the collector marks one object for many
// entries (see docs/engine.md, "Entries in slabs"). A slab stays in
// memory while any of its entries is in use or waits in free. Guarded by
// DB.wmu (at Open, by the replay, which runs before anything else).
type entries struct {
	slab   []entry  // the rest of the current slab
	size   int      // the current slab's size; slabs double up to entrySlabMax
	free   []*entry // reclaimed entries, cleared, to be used again
	reused int64    // entries used again, for tests
}

// take returns a zeroed entry from the current slab, or a new slab.
func (es *entries) take() *entry {
	if len(es.slab) == 0 {
		es.size = min(max(2*es.size, 64), entrySlabMax)
		es.slab = make([]entry, es.size)
	}
	e := &es.slab[0]
	es.slab = es.slab[1:]
	return e
}

// allocEntry returns an entry for key, whose bytes are in the arena's
// chunk kchunk (0: none): a reclaimed one if there is one, else a new
// one. db.wmu is held.
func (db *DB) allocEntry(key string, kchunk uint32) *entry {
	es := &db.entries
	if len(es.free) == 0 && db.order.waiting.Load() > 0 {
		es.free = db.order.reclaim(es.free)
		clearAll(es.free)
		// Keep no more than half the store's size, and at least a slab:
		// entries dropped here let the collector free the slabs that
		// hold no other entry in use (after a store shrinks). They are
		// cleared all the same: the collector scans every entry of a
		// slab it keeps.
		if keep := max(entrySlabMax, int(db.keys.Load()/2)); len(es.free) > keep {
			clear(es.free[keep:])
			es.free = es.free[:keep]
		}
	}
	var e *entry
	if n := len(es.free); n > 0 {
		e = es.free[n-1]
		es.free[n-1] = nil
		es.free = es.free[:n-1]
		if n > 1 {
			// The next new key's entry, a cache miss: loaded by then.
			var next [scanBatch]*entry
			next[0] = es.free[n-2]
			prefetch(&next, 1)
		}
		es.reused++
		if poisonReclaimed {
			e.clear()
		}
	} else {
		e = es.take()
	}
	e.kchunk.Store(kchunk)
	e.setKey(key)
	return e
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

// clearAll clears es a batch at a time, each batch prefetched while the
// one before is cleared: the entries of deleted keys are scattered over
// the heap, each a cache miss.
func clearAll(es []*entry) {
	var next [scanBatch]*entry
	prev := es[:0]
	for len(es) > 0 || len(prev) > 0 {
		n := copy(next[:], es)
		prefetch(&next, n)
		for _, e := range prev {
			e.clear()
			if poisonReclaimed {
				e.poison()
			}
		}
		prev, es = es[:n], es[n:]
	}
}

// clear drops what a reclaimed entry points to, so that it keeps no chunk
// in memory. Nothing reaches the entry now but, later, a pending release
// of a version it once held (pub.held), which compares its head with that
// version: every field is stored atomically.
func (e *entry) clear() {
	e.head.Store(nil)
	e.chunk.Store(0)
	e.kchunk.Store(0)
	e.kdata.Store(nil)
	e.kg.Store(0)
	e.vis.store(&version{kind: pubsub.Delete})
}

// poison makes a cleared entry read as the poison key, holding the poison
// value (poisonReclaimed).
func (e *entry) poison() {
	e.setKey(poisonKey)
	e.vis.store(&version{value: poisonValue, rev: 1, createRev: 1, ver: 1, kind: pubsub.Put})
}

func (e *entry) setKey(key string) {
	e.kdata.Store(unsafe.StringData(key))
	e.kg.Store(uint32(len(key)))
}

// key returns the entry's key.
func (e *entry) key() string {
	return unsafe.String(e.kdata.Load(), int(e.kg.Load()&keyLenMask))
}

func (e *entry) gone() bool { return e.kg.Load()&goneBit != 0 }

func (e *entry) markGone() { e.kg.Or(goneBit) }

const indexShards = 64

// index maps keys to entries. It is sharded so that readers on many cores do
// not contend on one lock; writers are already serialised by DB.wmu.
type index struct {
	seed   maphash.Seed
	shards [indexShards]indexShard
}

type indexShard struct {
	mu sync.RWMutex // guards m and more
	// m is keyed by the key's hash, not the key: growing the map then
	// rehashes integers instead of reading every key again.
	m map[uint64]*entry
	// more holds the entries whose key's hash was already taken in m by
	// another key. The hash is 64 bits, seeded anew for every index, so
	// more is almost always empty (a store of 10M keys has a pair sharing
	// a hash about once in 370,000: 10^14/2 pairs over 2^64 hashes), and
	// a lookup looks at it only when it is not. Keeping collisions apart
	// saves every entry a link to the next.
	more  map[string]*entry
	reads atomic.Int64 // lookups by readers, for Stats
	// A shard is 64 bytes, a cache line: the array is not aligned to
	// lines, so one shard may straddle two, but neighbours never share
	// more than one (TestIndexShard_Size).
	_ [16]byte
}

func newIndex() *index {
	ix := &index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].m = make(map[uint64]*entry)
	}
	return ix
}

// reserve sizes the shards of an empty index for about n keys, so that
// loading them does not grow the maps step by step.
func (ix *index) reserve(n int) {
	per := n/indexShards + n/indexShards/16 // the shards' sizes vary a little
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		if len(s.m) == 0 {
			s.m = make(map[uint64]*entry, per)
		}
		s.mu.Unlock()
	}
}

func (ix *index) shard(key string) (*indexShard, uint64) {
	h := maphash.String(ix.seed, key)
	return &ix.shards[h%indexShards], h
}

func (s *indexShard) find(h uint64, key string) *entry {
	if e := s.m[h]; e != nil && e.key() == key {
		return e
	}
	if len(s.more) != 0 {
		return s.more[key]
	}
	return nil
}

// insert adds e, whose key hashes to h and is not in the shard; s.mu is
// held.
func (s *indexShard) insert(h uint64, e *entry) {
	if _, taken := s.m[h]; !taken {
		s.m[h] = e
		return
	}
	if s.more == nil {
		s.more = make(map[string]*entry)
	}
	s.more[e.key()] = e
}

// delete takes e, whose key hashes to h, out of the shard if it is there;
// s.mu is held.
func (s *indexShard) delete(h uint64, e *entry) {
	if s.m[h] == e {
		delete(s.m, h)
	} else if s.more[e.key()] == e {
		delete(s.more, e.key())
		if len(s.more) == 0 {
			s.more = nil
		}
	}
}

// get returns key's entry, or nil. Only writers call it, holding DB.wmu:
// an entry leaves the index only under it.
func (ix *index) get(key string) *entry {
	s, h := ix.shard(key)
	s.mu.RLock()
	e := s.find(h, key)
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
	return s, s.find(h, key)
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
	s, h := ix.shard(e.key())
	s.mu.Lock()
	s.insert(h, e)
	s.mu.Unlock()
}

// putAll puts es, whose keys must not be in the index, taking each
// shard's lock once: inserts under one lock do not wait for each other's
// cache misses, as each unlock's atomic would make them.
func (ix *index) putAll(es []*entry) {
	var by [indexShards][]hashedEntry
	for _, e := range es {
		h := maphash.String(ix.seed, e.key())
		by[h%indexShards] = append(by[h%indexShards], hashedEntry{h, e})
	}
	for i := range by {
		if len(by[i]) == 0 {
			continue
		}
		s := &ix.shards[i]
		s.mu.Lock()
		for _, he := range by[i] {
			s.insert(he.h, he.e)
		}
		s.mu.Unlock()
	}
}

type hashedEntry struct {
	h uint64
	e *entry
}

// remove takes e out of the index, if it is there.
func (ix *index) remove(e *entry) {
	s, h := ix.shard(e.key())
	s.mu.Lock()
	s.delete(h, e)
	s.mu.Unlock()
}
