package engine

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// visible is a copy of a key's newest committed version, kept inside the
// entry so that a Get or a range scan reads the entry alone and not also a
// version somewhere else in the heap: on a large store each is a cache
// miss and often a TLB miss too, and following the entry to its version
// made 1000-key ranges slower than buntdb's (BenchmarkRange1000_Interleaved
// in bench/; figures in docs/engine.md).
//
// Only publish and a compaction's moves (under DB.pub.mu, one at a time),
// recovery and Restore (before their entries are reachable or with no
// commit queued), and the reclaim of an entry nothing reaches write it;
// readers take no lock. It is a sequence lock built from atomics: the
// writer makes seq odd, stores the fields, and makes seq even again; a
// reader that sees seq change, or odd, reads again. Every field is atomic,
// so a reader never acts on a torn string: it builds the value from the
// block's base, the offset and the length only once seq has shown that
// they belong together. The value's bytes are named, not pointed to
// (entryTable.ref): the block is looked up inside the sequence lock, so a
// reader that passes its check has the base of a block that held the
// value throughout (publish lets a block be used again only after the
// stores that moved every value out of it).
type visible struct {
	// seq is the sequence number (high 32 bits, odd while a store is under
	// way) and the value's length (low 32 bits; the log frames records
	// with 32-bit lengths, and Options caps MaxValueSize to match). Sharing
	// one word keeps an entry's key and visible version within 64 bytes.
	seq     atomic.Uint64
	ref     atomic.Uint64 // the value's bytes: block and offset
	rev     atomic.Int64  // 0: nothing committed yet
	created atomic.Int64  // create revision
	ver     atomic.Int64  // 0: deleted (or expired) at rev
	expires atomic.Int64  // unix ns; 0: never
}

const (
	seqOne  = 1 << 32 // one step of the sequence number in visible.seq
	lenMask = seqOne - 1
)

// shown is what a reader gets from a visible: a version without its chain.
type shown struct {
	value                      string
	rev, created, ver, expires int64
}

// live reports whether s is a value that has not expired at now. A key
// with no value at s.rev (deleted, expired, or never committed: rev 0) has
// ver 0.
func (s *shown) live(now int64) bool { return liveAt(s.ver, s.expires, now) }

// liveAt reports whether a version numbered ver (0: no value) that expires
// at expires (0: never) is live at now.
func liveAt(ver, expires, now int64) bool {
	return ver != 0 && (expires == 0 || now < expires)
}

func (s *shown) item(key string) Item {
	it := Item{Key: key, Value: s.value, Revision: s.rev, CreateRevision: s.created, Version: s.ver}
	if s.expires != 0 {
		it.ExpiresAt = expiresAt(s.expires)
	}
	return it
}

// store makes v the visible version, its value's bytes named by ref
// (entryTable.ref); a tombstone is stored as a deletion at its revision.
// Callers serialise.
func (x *visible) store(v *version, ref uint64) {
	q := x.seq.Load() &^ lenMask
	x.seq.Store(q + seqOne) // odd: readers wait
	x.rev.Store(v.rev)
	ref, n, created, ver, expires := v.visibleWords(ref)
	x.ref.Store(ref)
	x.created.Store(created)
	x.ver.Store(ver)
	x.expires.Store(expires)
	x.seq.Store(q + 2*seqOne | n)
}

// visibleWords returns what a visible copy of v holds besides its
// revision, given ref, its value's reference: the reference, the value's
// length, the create revision, the version and the expiry. A tombstone
// holds none of them (a deletion at its revision).
func (v *version) visibleWords(ref uint64) (r, n uint64, created, ver, expires int64) {
	if v.deleted() {
		return 0, 0, 0, 0, 0
	}
	return ref, uint64(len(v.value)), v.createRev, v.ver, v.expires
}

// storeFresh is store for a visible copy that no other goroutine can
// reach, nor will before a happens-before edge: an entry that Open's load
// of a snapshot just made, which goes to the loader through a channel and
// to readers once Open returns. Plain stores: each of store's atomic ones
// is a locked instruction, and a load of 1M keys makes 1M entries.
func (x *visible) storeFresh(v *version, ref uint64) {
	ref, n, created, ver, expires := v.visibleWords(ref)
	*plain(&x.rev) = v.rev
	*plainU(&x.ref) = ref
	*plain(&x.created), *plain(&x.ver), *plain(&x.expires) = created, ver, expires
	seq := plainU(&x.seq)
	*seq = *seq&^lenMask + 2*seqOne | n
}

// plain, plainU and plainU32 give the word of an atomic integer, for
// storeFresh and setKeyFresh: the atomic types hold their word and
// nothing else (TestPlainWords).
func plain(a *atomic.Int64) *int64      { return (*int64)(unsafe.Pointer(a)) }
func plainU(a *atomic.Uint64) *uint64   { return (*uint64)(unsafe.Pointer(a)) }
func plainU32(a *atomic.Uint32) *uint32 { return (*uint32)(unsafe.Pointer(a)) }

// move points the visible copy at ref, a copy of the value it holds
// made elsewhere. Callers serialise with store.
func (x *visible) move(ref uint64) {
	q := x.seq.Load()
	x.seq.Store(q + seqOne) // odd: readers wait
	x.ref.Store(ref)
	x.seq.Store(q + 2*seqOne)
}

// block returns the arena's block that holds the visible value (0: none).
func (x *visible) block() uint32 {
	if id := uint32(x.ref.Load() >> 32); id&probeBit == 0 {
		return id
	}
	return 0 // the poison value (poisonReclaimed)
}

// value returns the visible value, for a caller that keeps it from
// changing (it holds pub.mu).
func (x *visible) value(tab *entryTable) string {
	return tab.bytes(x.ref.Load(), int(x.seq.Load()&lenMask))
}

// load reads the visible version into s; tab resolves its bytes.
func (x *visible) load(s *shown, tab *entryTable) {
	for spins := 0; ; spins++ {
		var ok bool
		if s.value, s.rev, s.created, s.ver, s.expires, ok = x.tryLoad(tab); ok {
			return
		}
		if spins >= 16 {
			// The writer was descheduled in the middle of a store.
			runtime.Gosched()
		}
	}
}

// tryLoad is one attempt of load; ok reports whether it read the fields.
// It is the one lock-free read: Get reads through load, and a scan's emit
// calls it directly. It returns the fields as results, which come back in
// registers, for two reasons. Written through a pointer, the value's
// string would be a pointer store the compiler cannot prove goes to the
// stack, so it would take the write barrier while the collector marks
// (BenchmarkDB_Range_1000/gc=busy). Returned as one shown struct, it would
// be built in memory and copied out with wider loads than it was stored
// with, which the processor cannot forward from its store buffer
// (BenchmarkVisible_Load). docs/engine.md has the measurements.
func (x *visible) tryLoad(tab *entryTable) (value string, rev, created, ver, expires int64, ok bool) {
	q := x.seq.Load()
	r := x.ref.Load()
	p := tab.base(uint32(r >> 32))
	rev, created, ver, expires = x.rev.Load(), x.created.Load(), x.ver.Load(), x.expires.Load()
	if q&seqOne != 0 || x.seq.Load() != q {
		return "", 0, 0, 0, 0, false
	}
	n := int(q & lenMask)
	if n == 0 {
		return "", rev, created, ver, expires, true
	}
	if p == nil {
		panic("engine: a visible value's block is gone")
	}
	return at(p, r, n), rev, created, ver, expires, true
}
