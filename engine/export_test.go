package engine

import (
	"fmt"
	"time"
)

// Sweep runs one sweep of expired keys now and returns how many it removed.
func Sweep(db *DB) int {
	n, _, _ := db.sweep()
	return n
}

// PoisonReclaimed makes reclaimed entries read as a key and value of
// their own until they are used again (see poisonReclaimed).
func PoisonReclaimed(on bool) { poisonReclaimed = on }

// VisitIdleHeadsOften makes writes visit slabs for idle heads every few
// heads set, so that tests let heads go and make them again all the
// time, as a store does only now and then.
func VisitIdleHeadsOften() { idleHeadsEvery, idleHeadsSlabs = 8, 4 }

// HeadsRestAfter is how long after the last head set the visit at rest
// comes (DB.headsAtRest): once, or twice when it was armed before.
func HeadsRestAfter() time.Duration { return headsRestAfter }

// Heads counts the entries that hold a version object, and Held the
// versions waiting in pub.held to be let go.
func Heads(db *DB) int { return heads(db) }

func Held(db *DB) int {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	return len(db.pub.held)
}

// WithChunkSize sets the size of o's value chunks, so that a small store
// fills many and compacts them, and returns o.
func WithChunkSize(o *Options, size int) *Options {
	o.chunkSize = size
	return o
}

// WithChunks sets the size of o's value chunks and the dead bytes that
// start a compaction, and returns o.
func WithChunks(o *Options, size, minDead int) *Options {
	o.chunkSize, o.compactMinDead = size, minDead
	return o
}

// Compactions returns how many compactions of the value chunks ran.
func Compactions(db *DB) int64 { return db.arena().compactions.Load() }

// ArenaStats describes the value chunks, for a failure message.
func ArenaStats(db *DB) string { return fmt.Sprintf("%+v", db.arena().stats()) }

// ArenaErr checks the value chunks' counts against the entries: every
// chunk's live bytes are those of the visible values that entries hold in
// it, each of which lies inside its chunk; free chunks hold none; and the
// sums over full chunks add up. With commits waiting to be published it
// checks nothing.
func ArenaErr(db *DB) error {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	if len(db.pub.queue) != 0 {
		return nil
	}
	a := db.vals
	a.mu.Lock()
	defer a.mu.Unlock()
	live := make([]int, len(a.chunks))
	var bad error
	tab := db.entries.tab
	in := func(e *entry, what string, id uint32, ref uint64, n int) {
		if bad != nil {
			return
		}
		switch {
		case uint32(ref>>32) != id:
			bad = fmt.Errorf("%q's %s is named in block %d, counted in %d", tab.key(e), what, ref>>32, id)
		case id == 0 && n != 0:
			bad = fmt.Errorf("%q's %s of %d bytes is in no block", tab.key(e), what, n)
		case int(id) >= len(a.chunks):
			bad = fmt.Errorf("%q's %s is in block %d of %d", tab.key(e), what, id, len(a.chunks))
		case id != 0 && tab.base(id) == nil:
			bad = fmt.Errorf("%q's %s is in block %d, which is gone", tab.key(e), what, id)
		}
		if id == 0 || bad != nil {
			return
		}
		size := a.chunkSize
		if c := a.chunks[id]; c.full {
			size = int(c.size)
		}
		if int(uint32(ref))+n > size {
			bad = fmt.Errorf("%q's %s lies outside its block %d", tab.key(e), what, id)
		}
		live[id] += n
	}
	counted := func(e *entry) {
		in(e, "value", e.vis.block(), e.vis.ref.Load(), int(e.vis.seq.Load()&lenMask))
		in(e, "key", uint32(e.kref.Load()>>32), e.kref.Load(), int(e.kg.Load()&keyLenMask))
	}
	check := func(e *entry) {
		if e.gone() {
			bad = fmt.Errorf("%q is in the index, marked gone", tab.key(e))
		}
		counted(e)
	}
	for i := range db.index.shards {
		s := &db.index.shards[i]
		s.mu.RLock()
		s.t.each(func(id uint32) { check(db.index.tab.at(id)) })
		s.mu.RUnlock()
	}
	// Entries taken out but not yet reclaimed keep their keys in the
	// counts, and their values too if they left with one (Restore).
	db.order.mu.Lock()
	for _, r := range db.order.limbo {
		counted(db.index.tab.at(r.id))
	}
	db.order.mu.Unlock()
	if bad != nil {
		return bad
	}
	free := map[uint32]bool{}
	for _, id := range a.free {
		if free[id] {
			return fmt.Errorf("chunk %d freed twice", id)
		}
		free[id] = true
	}
	var liveBytes, fullBytes int
	for id := 1; id < len(a.chunks); id++ {
		c := a.chunks[id]
		switch {
		case free[uint32(id)]:
			if live[id] != 0 {
				return fmt.Errorf("chunk %d is free but entries hold %d bytes in it", id, live[id])
			}
			continue
		case live[id] != int(c.live):
			return fmt.Errorf("chunk %d: %d live bytes counted, %d held", id, c.live, live[id])
		case c.moving && !a.compacting.Load():
			return fmt.Errorf("chunk %d marked for a compaction that does not run", id)
		}
		if c.full {
			liveBytes += int(c.live)
			fullBytes += int(c.size)
		}
	}
	if liveBytes != a.liveBytes || fullBytes != a.fullBytes {
		return fmt.Errorf("full chunks: %d live of %d bytes counted, %d of %d summed", a.liveBytes, a.fullBytes, liveBytes, fullBytes)
	}
	return nil
}

// arena returns the arena that holds the values of the current state.
func (db *DB) arena() *arena {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	return db.vals
}

// arenaStats describes the chunks that hold values.
type arenaStats struct {
	chunks      int   // chunks in use
	liveBytes   int64 // bytes of values that entries hold, in full chunks
	fullBytes   int64 // bytes handed out in full chunks
	compactions int64 // compactions run since Open
}

func (a *arena) stats() arenaStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return arenaStats{chunks: len(a.chunks) - 1 - len(a.free), liveBytes: int64(a.liveBytes),
		fullBytes: int64(a.fullBytes), compactions: a.compactions.Load()}
}

// Compacting reports whether a compaction of the value chunks runs.
func Compacting(db *DB) bool { return db.arena().compacting.Load() }

// ArenaChunks counts the chunks of keys and values db uses.
func ArenaChunks(db *DB) int { return db.arena().stats().chunks }

// EntrySlabs is the length of db's table of entry slabs.
func EntrySlabs(db *DB) int { return len(db.entries.tab.load()) }

// EntriesReused counts the entries db used again for new keys.
func EntriesReused(db *DB) int64 { return reused(db) }
