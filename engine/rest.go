package engine

import "time"

// headsRestAfter is how long no head may be set before the DB's visit at
// rest lets the slabs' idle heads go. A variable, for tests; a DB takes
// it at Open (DB.rest.after).
var headsRestAfter = time.Second

// armRest sets the visit at rest to run DB.rest.after from now;
// entryTable.headSet calls it, with DB.wmu held, with the first head set
// since the last visit.
func (db *DB) armRest() {
	if db.closed.Load() {
		return // Close stopped the timer
	}
	db.entries.tab.headsLately = false
	if db.rest.timer == nil {
		db.rest.timer = time.AfterFunc(db.rest.after, db.headsAtRest)
		return
	}
	db.rest.timer.Reset(db.rest.after)
}

// headsAtRest lets go the tables of heads of every slab whose heads are
// all nil (entryTable.restHeads), if no head was set since the visit was
// armed; if one was, or if it kept a table for a head still set, it looks
// again DB.rest.after later: heads go back to nil without being set
// (once a snapshot closes, or a commit waiting for the disk is
// published), and the table they leave must go too. The versions held
// for snapshots that have closed since the last publish are dropped
// first, since no publish may come to do it. Writes let
// idle heads go themselves (entryTable.idleHeads), a few slabs every
// idleHeadsEvery heads set; once they stop, the tables that the last of
// them left stay, one small object a slab to mark in every collection,
// until this visit. It takes DB.wmu for one pass over the slabs: a look
// at each one's place in the table, and at the table of heads of each
// that has one.
func (db *DB) headsAtRest() {
	db.bg.mu.Lock()
	if db.bg.closed {
		db.bg.mu.Unlock()
		return
	}
	db.bg.wg.Add(1)
	db.bg.mu.Unlock()
	defer db.bg.wg.Done()

	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.closed.Load() {
		return
	}
	// The versions kept for snapshots that have closed since the last
	// commit was published, which would have let them go.
	db.pub.mu.Lock()
	db.dropHeld(db.readers.oldest())
	db.pub.mu.Unlock()
	t := db.entries.tab
	if t.headsLately || t.restHeads() {
		db.armRest()
		return
	}
	t.restArmed = false
}
