package engine

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The bytes of stored values live in chunks: large byte slices, which the
// collector does not scan and counts as one object each, instead of one
// string per value. A value is copied into a chunk when it is written and
// never changes there: a string handed to a reader points into the chunk
// and stays valid and unchanged as long as the reader keeps it, since the
// collector frees a chunk only when nothing points into it.
//
// Overwrites and deletions leave dead bytes behind. Each chunk counts its
// live bytes, those of the values that entries' visible copies hold, and
// when the dead bytes in full chunks outgrow the live ones, a compaction
// copies the live values of the emptiest chunks into new ones and points
// the entries at the copies; what still points into an old chunk (a
// reader's string, a version a snapshot reads, an event in the history)
// keeps it alive, and the collector frees it when that goes.
const (
	// defaultChunkSize is the size of a chunk: thousands of values to an
	// object the collector marks (the larger the objects, the less
	// marking grows with the keys: docs/engine.md, "Blocks of 256 KiB"),
	// and yet not much memory kept by a reader that holds one value of a
	// chunk the store no longer uses.
	defaultChunkSize = 256 << 10
	// A store's chunks grow with it: a new chunk of an arena of the
	// default size is a power of two, at least defaultChunkSize and at
	// most maxChunkSize, near the bytes in its full chunks over
	// chunksAbout, so that the collector marks a few times as many
	// chunks at 10M keys as at 1M, not ten (docs/engine.md, "Chunks
	// that grow with the store").
	maxChunkSize = 4 << 20
	chunksAbout  = 256
	// A value larger than a chunk over chunkMaxValueDiv, or than
	// chunkMaxValue, is allocated on its own: its size makes a chunk's
	// saving small.
	chunkMaxValueDiv = 16
	chunkMaxValue    = 4 << 10
	// compactMinChunks is how many chunks' worth of dead bytes it takes,
	// at least, to start a compaction: a small store never compacts.
	compactMinChunks = 16
	// compactBatch is how many entries a compaction moves under one hold
	// of pub.mu, so that publishing waits for it only briefly.
	compactBatch = 64
)

// chunkInfo is what the arena knows of one block; its id is its index in
// arena.chunks (id 0 is no block: an empty value or key). A block is a
// chunk, or a value or key too large for one, allocated on its own and
// counted as a chunk that is full from the start (solo). Entries name
// blocks by id, and their bytes by offset (entryTable.ref); the table's
// chunks list holds each block's base, which keeps it alive. Publishing
// reads the chunkInfo of the value each commit replaces, at random, so it
// is kept small: 32 bytes. Its counts are 64-bit: a block of its own may
// hold a value of up to 4 GiB (Options.MaxValueSize).
type chunkInfo struct {
	size int64 // bytes handed out (final once full)
	live int64 // bytes of the values that visible copies hold
	// fullRev is the revision from which on no commit can hold a value
	// in the chunk, once full is set (no more values go into it): its id
	// may be used again once that revision is visible and live is 0.
	fullRev int64
	full    bool
	moving  bool // chosen by the running compaction
}

// arena allocates values into chunks and keeps each chunk's count of
// live bytes.
type arena struct {
	// mu guards chunks, free, the counts and mover. Lock order: wmu →
	// pub.mu → arena.mu; the writer's allocator takes it only to change
	// chunks.
	mu     sync.Mutex
	chunks []chunkInfo
	// chunkSize, maxValue and minDead are the size of a chunk, that of
	// the largest value put in one, and the dead bytes it takes to start
	// a compaction.
	chunkSize, maxValue, minDead int
	// grow says the chunks grow with the store (chunkFor); tests that
	// set chunkSize keep it.
	grow bool
	free []uint32
	// bases holds each block's base, by id: the entry table's, whose
	// readers resolve entries' references with it.
	bases *blocks

	// liveBytes and fullBytes are the sums of live and size over the full
	// chunks; a compaction is due when fullBytes-liveBytes passes both
	// minDead and liveBytes.
	liveBytes, fullBytes int

	// writer takes values and keys the keys of new entries, apart: a
	// key lasts as long as its entry, a value often much less. Both are
	// guarded by DB.wmu. mover takes what a compaction moves; it is
	// guarded by mu (the compaction holds pub.mu too).
	writer, keys, mover allocator

	compacting atomic.Bool // a compaction runs
	// restores counts the Replica.Restores, which end a compaction of
	// the state they replace; guarded by DB.pub.mu.
	restores    int64
	compactions atomic.Int64
}

// allocator fills one chunk at a time.
type allocator struct {
	id  uint32
	buf []byte // the chunk; len is what is handed out
}

// newArena returns an empty arena whose chunks are size bytes, and which
// compacts once minDead bytes are dead (0: the defaults).
func newArena(bases *blocks, size, minDead int) *arena {
	grow := size <= 0
	if grow {
		size = defaultChunkSize
	}
	if minDead <= 0 {
		minDead = compactMinChunks * size
	}
	return &arena{chunks: make([]chunkInfo, 1), bases: bases, // id 0: no block
		chunkSize: size, maxValue: min(size/chunkMaxValueDiv, chunkMaxValue), minDead: minDead, grow: grow}
}

// chunkFor returns the size of the next chunk: chunkSize, or, if the
// chunks grow with the store, the largest power of two not above the
// bytes of the full chunks over chunksAbout, between chunkSize and
// maxChunkSize. a.mu is held.
func (a *arena) chunkFor() int {
	size := a.chunkSize
	for a.grow && size < maxChunkSize && 2*size <= a.fullBytes/chunksAbout {
		size *= 2
	}
	return size
}

// put copies value into a chunk and returns the copy and the chunk's id;
// a value too large (or empty) comes back as it is, with id 0. rev is the
// revision of the transaction it is for. db.wmu is held.
func (a *arena) put(value string, rev int64) (string, uint32) {
	return a.writer.put(a, value, rev)
}

// put copies value into the allocator's chunk, starting a new one if it
// does not fit; rev is the newest revision a commit holding value may
// have.
func (al *allocator) put(a *arena, value string, rev int64) (string, uint32) {
	n := len(value)
	if n == 0 || n > a.maxValue {
		return value, 0
	}
	if len(al.buf)+n > cap(al.buf) {
		a.next(al, rev)
	}
	start := len(al.buf)
	al.buf = append(al.buf, value...)
	return unsafe.String(&al.buf[start], n), al.id
}

// next closes the allocator's chunk, if it has one, at revision rev, and
// gives it a new one. a.mu is taken unless locked.
func (a *arena) next(al *allocator, rev int64) {
	lock := al != &a.mover // the mover's caller holds a.mu
	if lock {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	if al.id != 0 {
		c := &a.chunks[al.id]
		c.size, c.full, c.fullRev = int64(len(al.buf)), true, rev
		a.fullBytes += int(c.size)
		a.liveBytes += int(c.live)
	}
	id := a.newID()
	al.id, al.buf = id, make([]byte, 0, a.chunkFor())
	a.chunks[id] = chunkInfo{}
	a.bases.set(id, unsafe.SliceData(al.buf))
}

// newID returns the id of a new block: a freed one, or a new one. a.mu
// is held.
func (a *arena) newID() uint32 {
	if n := len(a.free); n > 0 {
		id := a.free[n-1]
		a.free = a.free[:n-1]
		return id
	}
	a.chunks = append(a.chunks, chunkInfo{})
	id := uint32(len(a.chunks) - 1)
	if id >= probeBit {
		panic("engine: more than 2^31 blocks")
	}
	return id
}

// solo makes s, a value or key too large for a chunk, a block of its own
// and returns its id; it counts as a full chunk that holds nothing yet,
// from revision rev (put). a.mu is held.
func (a *arena) solo(s string, rev int64) uint32 {
	id := a.newID()
	a.chunks[id] = chunkInfo{size: int64(len(s)), full: true, fullRev: rev}
	a.fullBytes += len(s)
	a.bases.set(id, unsafe.StringData(s))
	return id
}

// big reports whether a value or key of n bytes goes into a block of its
// own (solo) rather than a chunk.
func (a *arena) big(n int) bool { return n > a.maxValue }

// own returns s, or a copy of it if it is too large for a chunk: the
// arena keeps such a string as it is (solo) rather than copy it, so one
// that points into a buffer used again (wal.Replay.Borrow) must become
// the caller's own first.
func (a *arena) own(s string) string {
	if a.big(len(s)) {
		return strings.Clone(s)
	}
	return s
}

// moved records that a visible copy went from a value of oldLen bytes in
// block old to one of newLen bytes in block nu. It returns old if that
// block may be used again now (reuse), 0 otherwise: the caller calls
// reuse once no visible copy names it any more. a.mu is held.
func (a *arena) moved(old uint32, oldLen int, nu uint32, newLen int) (emptied uint32) {
	if old != 0 {
		c := &a.chunks[old]
		c.live -= int64(oldLen)
		if c.full {
			a.liveBytes -= oldLen
			if c.live == 0 {
				emptied = old
			}
		}
	}
	if nu != 0 {
		a.count(nu, newLen)
	}
	return emptied
}

// reuse frees chunk id's id if no visible copy holds a value in it and no
// commit that may yet become visible can. a.mu is held.
func (a *arena) reuse(id uint32, committed int64) {
	c := &a.chunks[id]
	if !c.full || c.live != 0 || c.fullRev > committed || c.moving {
		return
	}
	a.fullBytes -= int(c.size)
	a.chunks[id] = chunkInfo{}
	a.bases.set(id, nil) // for the collector, unless something else holds it
	a.free = append(a.free, id)
}

// forgetRevisions lets every full block be used again once nothing in it
// is live, whatever the revision: no commit that could hold a value in
// one is to come (Replica.Restore). a.mu is held.
func (a *arena) forgetRevisions() {
	for id := range a.chunks {
		if a.chunks[id].full {
			a.chunks[id].fullRev = 0
		}
	}
}

// due reports whether a compaction would pay. a.mu is held.
func (a *arena) due() bool {
	dead := a.fullBytes - a.liveBytes
	return dead >= a.minDead && dead >= a.liveBytes
}

// choose marks the full chunks less than half live to be emptied by a
// compaction and returns how many it marked. a.mu is held.
func (a *arena) choose() int {
	n := 0
	for id := range a.chunks {
		c := &a.chunks[id]
		if c.full && c.live*2 < c.size {
			c.moving = true
			n++
		}
	}
	return n
}

// putKey copies the key of a new entry into a chunk and returns the copy
// and the chunk's id; its bytes count as live until release. db.wmu is
// held.
func (a *arena) putKey(key string) (string, uint32) {
	// A chunk of keys may be used again as soon as no entry's key is in
	// it: its bytes count from the moment they are written (rev 0).
	if key == "" {
		return "", 0
	}
	k, id := a.keys.put(a, key, 0)
	a.mu.Lock()
	if id == 0 { // too large for a chunk
		id = a.solo(k, 0)
	}
	a.count(id, len(k))
	a.mu.Unlock()
	return k, id
}

// release takes the bytes of a reclaimed entry out of its chunks' live
// counts: its key's, and its visible value's if it still holds one (an
// entry of the state a Replica.Restore replaced; a deletion's publish has
// already moved the counts off a deleted key's value). Until then a
// reader that could reach the entry could read them: no chunk they are
// in is used again before. a.mu is held.
func (a *arena) release(e *entry, committed int64) {
	if id := a.moved(uint32(e.kref.Load()>>32), int(e.kg.Load()&keyLenMask), 0, 0); id != 0 {
		a.reuse(id, committed)
	}
	if id := a.moved(e.vis.block(), int(e.vis.seq.Load()&lenMask), 0, 0); id != 0 {
		a.reuse(id, committed)
	}
}

// count adds n live bytes to chunk id. a.mu is held.
func (a *arena) count(id uint32, n int) {
	c := &a.chunks[id]
	c.live += int64(n)
	if c.full {
		a.liveBytes += n
	}
}

// restore copies s, a key (into al, a.keys) or a value (a.writer) of a
// snapshot that recovery or Replica.Restore loads: it is live at once. If
// shared, a compaction may run meanwhile (Restore), and a.mu is taken;
// otherwise nothing else uses the arena yet.
func (a *arena) restore(al *allocator, s string, rev int64, shared bool) (string, uint32) {
	if s == "" {
		return "", 0
	}
	c, id := al.put(a, s, rev)
	if shared {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	if id == 0 { // too large for a chunk
		id = a.solo(c, rev)
	}
	a.count(id, len(c))
	return c, id
}
