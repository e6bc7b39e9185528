package engine

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
)

// Update runs fn in a write transaction. If fn returns nil, every write it
// made commits at once, under one new revision; if fn returns an error or
// panics, none of them does and the error (or the panic) is passed on.
// Write transactions run one at a time, so they are serializable; readers
// never wait for them. On disk, Update returns, whatever it returns, only
// once its own writes and every write of another transaction that fn read
// are durable: no caller learns of a write that a crash could take back.
// fn writes through tx alone: a DB method that writes (Set, Update,
// Subscribe, Close and the others that take the writer lock), called
// from fn, waits for the transaction that runs it, for ever.
//
// It returns the revision the transaction committed at, 0 if it wrote
// nothing.
func (db *DB) Update(fn func(tx *Tx) error) (rev int64, err error) {
	if fn == nil {
		return 0, fmt.Errorf("%w: Update of a nil function", ErrInvalidOptions)
	}
	return db.write(&Tx{}, fn)
}

// update runs one write on the reused transaction; the DB's own
// single-operation methods use it.
func (db *DB) update(fn func(tx *Tx) error) error {
	_, err := db.write(nil, fn)
	return err
}

// write runs fn in the write transaction tx (nil: the reused one), commits
// it, and waits outside the writer lock until it is durable and visible.
func (db *DB) write(tx *Tx, fn func(tx *Tx) error) (int64, error) {
	if tx == nil {
		tx = &db.wtx
	}
	db.wmu.Lock()
	locked := true
	defer func() {
		if locked { // fn, the clock or the replicator panicked: the panic goes on
			defer db.wmu.Unlock() // even if the rollback panics too
			tx.rollback()
		}
	}()
	if db.closed.Load() {
		locked = false
		db.wmu.Unlock()
		return 0, ErrClosed
	}
	db.begin(tx)
	var rev int64
	err := fn(tx)
	if err != nil {
		tx.rollback()
	} else {
		rev, err = tx.commit()
	}
	if tx.gets > 0 { // most writes read nothing: no shared counter to touch
		db.stats.gets.Add(tx.gets)
	}
	read := tx.read
	epoch := len(db.pub.lost) // changes only under wmu
	locked = false
	db.wmu.Unlock()
	if rev == 0 && read > db.committed.Load() {
		// The transaction wrote nothing (it failed, or only read), but
		// what it learned, a value, a conflict, a not-found, came from a
		// write that is not yet durable. A crash could still take that
		// write back, so the caller hears nothing until it is durable, and
		// if it never becomes so, hears why instead.
		if derr := db.durable(read, epoch); derr != nil {
			return 0, derr
		}
	}
	if err != nil {
		return 0, err
	}
	if err := db.durable(rev, epoch); err != nil {
		return 0, err
	}
	return rev, nil
}

// begin starts a write transaction; db.wmu is held. The clock is the
// caller's code (Options.Now), and may panic: tx is the DB's, and done,
// before it is read, so that write's rollback finds nothing to undo.
func (db *DB) begin(tx *Tx) {
	tx.db, tx.done = db, true
	db.beginAt(tx, db.txNow())
}

// txNow is the clock of write transactions and of the sweep: on a
// replica never below the newest commit time, so that time never runs
// backwards across a change of leader. db.wmu is held.
func (db *DB) txNow() int64 {
	now := db.now()
	if db.repl != nil {
		now = max(now, db.lastTime)
	}
	return now
}

// beginAt is begin at the time now, the commit time of a record applied
// again, without reading the clock.
func (db *DB) beginAt(tx *Tx, now int64) {
	tx.db = db
	tx.writable = true
	tx.done = false
	tx.rev = db.rev + 1
	tx.now = now
	// A replica never judges expiry (readAt): a key is there until its
	// expiry commits. A DB judges at now, which for a record applied
	// again is its commit time: what its writer judged by, and what
	// records of old logs, without Created flags, need.
	tx.at = now
	if db.repl != nil {
		tx.at = math.MinInt64
	}
	tx.writes = tx.writes[:0]
	tx.read = 0
	tx.applied = false
	tx.nwrites, tx.gets = 0, 0
	db.bury()
}

// rollback restores every entry the transaction changed.
func (tx *Tx) rollback() {
	if tx.done {
		return
	}
	db := tx.db
	for i := len(tx.writes) - 1; i >= 0; i-- {
		w := tx.writes[i]
		db.entries.tab.setHead(w.e, w.old)
		if mayHold(w.old) {
			db.pub.mu.Lock()
			db.rehold(w.e, w.old)
			db.pub.mu.Unlock()
		}
		if w.created {
			db.forget(w.e)
		}
		tx.writes[i] = txWrite{}
	}
	tx.writes = tx.writes[:0]
	tx.done = true
	db.stats.rollbacks.Add(1)
}

// commit hands the transaction to the log and queues it to become
// visible; db.wmu is held. It returns the revision to wait for (0 when the
// transaction wrote nothing and takes no revision). If the log refuses the
// record, the transaction is rolled back and the error returned.
func (tx *Tx) commit() (int64, error) {
	if len(tx.writes) == 0 {
		tx.done = true
		return 0, nil
	}
	db := tx.db
	switch {
	case tx.applied: // already durable elsewhere: ApplyCommitted
	case db.log != nil:
		if err := db.log.Append(tx.record()); err != nil {
			tx.rollback()
			if errors.Is(err, wal.ErrTooLarge) {
				return 0, fmt.Errorf("%w: the transaction's log record (%w)", ErrTooLarge, err)
			}
			return 0, fmt.Errorf("engine: %w", err)
		}
	case db.repl != nil:
		if err := db.repl.Append(tx.record()); err != nil {
			tx.rollback()
			return 0, err
		}
		db.lastTime = max(db.lastTime, tx.now)
	}
	tx.done = true
	c := &commit{rev: tx.rev, events: db.events.take(len(tx.writes))}
	if len(tx.writes) <= len(c.one) {
		c.writes = c.one[:len(tx.writes)]
	} else {
		c.writes = make([]committedWrite, len(tx.writes))
	}
	at := time.Unix(0, tx.now)
	for i, w := range tx.writes {
		v := db.entries.tab.head(w.e)
		c.writes[i] = committedWrite{e: w.e, v: v, old: w.old, created: w.created}
		c.events[i] = pubsub.Event{Revision: tx.rev, Type: v.kind, Key: db.entries.tab.key(w.e), Value: v.value, Time: at}
		had, hadExpires := w.e.before(w.old, w.created)
		if had && hadExpires != 0 {
			db.exp.remove(hadExpires, w.e)
		}
		if present(v) && v.expires != 0 {
			db.exp.add(v.expires, w.e)
		}
		// A key is counted while its newest version is not a tombstone.
		// Its entry may hold a tombstone not yet buried, so created alone
		// does not say whether the key is new.
		db.keys.Add(count(v) - one(had))
		tx.writes[i] = txWrite{}
	}
	tx.writes = tx.writes[:0]
	db.rev = tx.rev
	db.stats.commits.Add(1)
	db.stats.writes.Add(tx.nwrites)

	db.pub.mu.Lock()
	db.pub.queue = append(db.pub.queue, c)
	// The replicated log may have committed it, and Publish run for
	// it, between Append and here.
	published := db.repl != nil && c.rev <= db.pub.target
	db.pub.mu.Unlock()
	if published {
		db.publish(c.rev)
	}
	if db.log == nil && db.repl == nil {
		// In memory a commit is final at once: make it visible before the
		// writer lock goes, so that the next transaction finds it so.
		db.publish(tx.rev)
		db.bury()
	}
	return tx.rev, nil
}

// record is the transaction as the log keeps it: the post-images.
func (tx *Tx) record() *wal.Tx {
	r := &wal.Tx{Revision: tx.rev, Time: tx.now, Writes: make([]wal.Write, len(tx.writes))}
	for i, w := range tx.writes {
		v := tx.db.entries.tab.head(w.e)
		r.Writes[i] = wal.Write{Kind: walKindOf(v.kind), Key: tx.db.entries.tab.key(w.e), Value: v.value, Expires: v.expires, Created: v.createRev == tx.rev}
	}
	return r
}

// walKind is the log's write kind of an event type (a version's kind is
// always one of them). An array, not a map: it is read for every write.
var walKind = [...]byte{pubsub.Put: wal.KindPut, pubsub.Patch: wal.KindPatch,
	pubsub.Increment: wal.KindIncrement, pubsub.Delete: wal.KindDelete, pubsub.Expire: wal.KindExpire}

// walKindOf is walKind[t], or 0, which the log's decoder refuses, for a
// type it does not know.
func walKindOf(t pubsub.Type) byte {
	if int(t) < len(walKind) {
		return walKind[t]
	}
	return 0
}

// commit is a committed transaction waiting to become visible.
type commit struct {
	rev    int64
	writes []committedWrite
	events []pubsub.Event
	one    [1]committedWrite // writes of a commit of one write, the most
}

type committedWrite struct {
	e *entry
	v *version
	// What the transaction found, so that Replica.Abandon can undo it.
	old     *version
	created bool
}

// present reports whether v is a version that holds a value, expired or
// not: the key exists and is counted in DB.keys.
func present(v *version) bool { return v != nil && !v.deleted() }

func count(v *version) int64 { return one(present(v)) }

func one(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// durable waits until revision rev is durable and makes it visible; rev 0
// (nothing written) returns at once. epoch is len(db.pub.lost) when the
// transaction that waits for rev ended.
func (db *DB) durable(rev int64, epoch int) error {
	if rev == 0 {
		return nil
	}
	if db.repl != nil {
		// The replicator's commit path publishes (Replica.Publish).
		if err := db.repl.WaitDurable(rev); err != nil {
			return err
		}
		// rev may be durable as another leader's commit, after an
		// Abandon took back the one this transaction made or read.
		db.pub.mu.Lock()
		defer db.pub.mu.Unlock()
		for _, from := range db.pub.lost[epoch:] {
			if from <= rev {
				return fmt.Errorf("%w: revision %d", ErrAbandoned, rev)
			}
		}
		return nil
	}
	if db.log == nil {
		return nil
	}
	if err := db.log.WaitDurable(rev); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	db.publish(rev)
	db.maybeCheckpoint()
	return nil
}

// publish makes every queued transaction up to rev visible to readers and
// subscribers, in revision order.
func (db *DB) publish(rev int64) {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	n := 0
	for _, c := range db.pub.queue {
		if c.rev > rev {
			break
		}
		// A write whose head was nil left the version before it, the
		// committed one, in vis alone; a snapshot below the write may
		// still read it, so it goes into the chain before vis moves on.
		// With snapshots open, that is done here, outside readers.mu,
		// for every such write (a link no snapshot needs is cut by
		// release); below, only for a snapshot opened since.
		if db.readers.n.Load() != 0 {
			for _, w := range c.writes {
				if w.v.prev.Load() == nil && !w.created {
					w.v.prev.Store(w.e.vis.committed(db.entries.tab))
				}
			}
		}
		db.account(c)
		// No snapshot opens while the commit becomes visible: one opened
		// before reads below c.rev and is counted in oldest, one opened
		// after reads at c.rev or later.
		db.readers.mu.Lock()
		oldest := db.readers.oldestLocked()
		for _, w := range c.writes {
			if oldest < w.v.rev && w.v.prev.Load() == nil && !w.created {
				w.v.prev.Store(w.e.vis.committed(db.entries.tab))
			}
			w.e.vis.store(w.v, db.entries.tab.ref(w.v.chunk, w.v.value))
			if w.v.deleted() {
				db.pub.graves = append(db.pub.graves, w)
			}
		}
		db.committed.Store(c.rev)
		db.readers.mu.Unlock()
		db.reuseEmptied(c.rev)
		if db.broker != nil {
			db.broker.Publish(pubsub.Batch{Revision: c.rev, Events: c.events})
		}
		db.release(c, oldest)
		n++
	}
	// What is left moves to the front, so that the array is used again:
	// sliced off the front instead, it would run out, and the next
	// commit's append would make a new one (at one commit a publish, one
	// for each commit). The room after it is cleared, published commits
	// and copies alike.
	if n > 0 {
		left := copy(db.pub.queue, db.pub.queue[n:])
		clear(db.pub.queue[left:])
		db.pub.queue = db.pub.queue[:left]
		db.revWaiters.wake()
	}
}

// account moves the counts of the value chunks' live bytes from the
// values that c's writes replace to theirs, before they become visible;
// pub.mu is held.
func (db *DB) account(c *commit) {
	a := db.vals
	a.mu.Lock()
	for _, w := range c.writes {
		if w.v.chunk == 0 && a.big(len(w.v.value)) {
			// Too large for a chunk: a block of its own from now on,
			// which nothing holds until it is visible.
			w.v.chunk = a.solo(w.v.value, c.rev)
		}
		emptied := a.moved(w.e.vis.block(), int(w.e.vis.seq.Load()&lenMask), w.v.chunk, len(w.v.value))
		if emptied != 0 {
			// Used again only once no visible copy names it: after the
			// stores that make c visible (reuseEmptied).
			db.pub.emptied = append(db.pub.emptied, emptied)
		}
	}
	db.maybeCompact(a)
	a.mu.Unlock()
}

// reuseEmptied lets the blocks that account found emptied be used again,
// now that the visible copies name others; committed is the revision of
// the commit just made visible (a block that commits up to it alone could
// fill may be used again). That commit's own values are not in a block
// it emptied, since they count in it: the one block it may have closed,
// by a write that no longer fitted, with fullRev its revision, is used
// again at once, not left for a compaction (a key rewritten in place,
// alone in its chunks, closes and empties each with one commit). pub.mu
// is held.
func (db *DB) reuseEmptied(committed int64) {
	if len(db.pub.emptied) == 0 {
		return
	}
	a := db.vals
	a.mu.Lock()
	for _, id := range db.pub.emptied {
		a.reuse(id, committed)
	}
	a.mu.Unlock()
	db.pub.emptied = db.pub.emptied[:0]
}

// release drops the versions of the just visible commit c that no
// snapshot can read any more; oldest is the lowest revision an open
// snapshot reads at, and one opened from now on reads at c.rev or later.
// A key's newest version that is a value goes too once no snapshot reads
// below it, leaving the entry's visible copy alone (head nil); one that a
// snapshot still reads below waits in pub.held until none does. A
// tombstone stays in head until bury takes its entry out, then goes as
// a value does. pub.mu is held.
func (db *DB) release(c *commit, oldest int64) {
	db.dropHeld(oldest)
	below := min(oldest, c.rev)
	for _, w := range c.writes {
		v := db.entries.tab.head(w.e)
		for v != nil && v.rev > below {
			v = v.prev.Load()
		}
		if v != nil {
			v.prev.Store(nil)
		}
		switch {
		case w.v.deleted():
		case oldest >= w.v.rev:
			db.entries.tab.dropHead(w.e, w.v)
		default:
			db.pub.held = append(db.pub.held, heldVersion{e: w.e, v: w.v})
		}
	}
}

// dropHeld drops the versions in pub.held that no snapshot reads below
// any more; oldest is the lowest revision an open snapshot reads at (one
// opened since reads at the newest visible revision, above every held
// version). pub.mu is held.
func (db *DB) dropHeld(oldest int64) {
	for len(db.pub.held) > 0 && db.pub.held[0].v.rev <= oldest {
		h := db.pub.held[0]
		db.entries.tab.dropHead(h.e, h.v) // unless a newer write is there
		db.pub.held[0] = heldVersion{}
		db.pub.held = db.pub.held[1:]
	}
	if len(db.pub.held) == 0 {
		db.pub.held = nil // let the backing array go
	}
}

// heldVersion is a key's newest version kept as an object after it became
// visible, because a snapshot opened before it was still reading (or a
// rollback put it back). pub.held is in revision order but for those
// put back, which only wait longer.
type heldVersion struct {
	e *entry
	v *version
}

// mayHold reports whether v, put back in an entry's head by a rollback or
// an Abandon, may be a visible value whose release already ran.
func mayHold(v *version) bool { return v != nil && !v.deleted() }

// rehold queues v, which a rollback or an Abandon has put back in e's
// head, to be released again if it is visible: its own release, which ran
// when it became so, found a newer write in head and left it. pub.mu is
// held.
func (db *DB) rehold(e *entry, v *version) {
	if mayHold(v) && v.rev <= db.committed.Load() {
		db.pub.held = append(db.pub.held, heldVersion{e: e, v: v})
	}
}

// forget takes e out of the index and the tree, unless it is out
// already: a deletion's burial may be queued twice (published, then
// queued again by the Abandon of a later write of its key), and an entry
// taken out twice would be used again for two keys. Its key stays in
// its chunk's live bytes until the entry is reclaimed (arena.release,
// from DB.clearAll): a reader may still compare it. db.wmu is held, and maybe pub.mu.
func (db *DB) forget(e *entry) {
	if e.gone() {
		return
	}
	db.index.remove(e)
	db.order.remove(e) // marks it gone: a compaction leaves its key alone
}

// bury takes the keys whose deletion is visible out of the index and the
// tree, unless a later write brought them back; db.wmu is held. The
// tombstone in a buried entry's head goes as soon as no snapshot reads
// below it, as a value's does (release): it would otherwise stay, an
// object for the collector, with its slab's table of heads, until the
// entry is used again for a new key, which a store that only deletes
// never makes.
func (db *DB) bury() {
	db.pub.mu.Lock()
	graves := db.pub.graves
	db.pub.graves = nil
	db.pub.mu.Unlock()
	n := 0
	for _, w := range graves {
		if db.entries.tab.head(w.e) == w.v {
			db.forget(w.e)
			graves[n] = w
			n++
		}
	}
	if n == 0 {
		return
	}
	db.pub.mu.Lock()
	oldest := db.readers.oldest()
	for _, w := range graves[:n] {
		if oldest >= w.v.rev {
			db.entries.tab.dropHead(w.e, w.v)
		} else {
			db.pub.held = append(db.pub.held, heldVersion{e: w.e, v: w.v})
		}
	}
	db.pub.mu.Unlock()
	if db.order.waiting.Load() >= slabEntries {
		// A new key reclaims the entries taken out when it finds none to
		// use again (allocEntry); a store that only deletes makes none,
		// and would keep every entry it took out, their slabs and their
		// keys' bytes, for good.
		db.reclaimEntries(max(slabEntries, int(db.keys.Load()/2)))
	}
}

// View runs fn in a read-only transaction that sees one consistent snapshot:
// the database as of the newest committed revision when View began, with
// expiry judged at a time (Tx.Now) read once that snapshot was taken: no
// earlier than its commits' times, unless the clock stepped back. Writes
// inside it return ErrReadOnly. View never waits for writers.
func (db *DB) View(fn func(tx *Tx) error) error {
	if fn == nil {
		return fmt.Errorf("%w: View of a nil function", ErrInvalidOptions)
	}
	if db.closed.Load() {
		return ErrClosed
	}
	db.stats.views.Add(1)
	s := db.snapshot()
	defer db.closeSnapshot(s)
	// The clock is read once the snapshot is taken, as a scan's is: a
	// commit the snapshot holds is not later than the time it judges
	// expiry at.
	tx := &Tx{db: db, now: db.now(), at: math.MinInt64}
	if db.repl == nil { // readAt, from the same reading of the clock
		tx.at = tx.now
	}
	tx.snap, tx.rev = s.t, s.rev
	defer func() {
		tx.done = true
		if tx.probe != nil {
			s.t.tab.unprobe(tx.probe)
		}
		if tx.gets > 0 {
			db.stats.gets.Add(tx.gets)
		}
	}()
	return fn(tx)
}

// snapshot is a copy of the ordered tree and the revision to read it at,
// open until closeSnapshot: the versions it reads below the newest are
// kept, and so are the entries it holds.
type snapshot struct {
	t   treeCopy
	rev int64
	pin pin
}

// snapshot opens a snapshot; the caller closes it with closeSnapshot.
// It is of a whole state: a Restore under way is waited for, and a copy
// that one began during is taken again (DB.readGate).
func (db *DB) snapshot() (s snapshot) {
	for {
		g := db.readGate()
		s.t, s.pin = db.order.copy(func() {
			s.rev = db.readers.open(db.committed.Load)
		})
		if db.restoring.Load() == g {
			return s
		}
		db.closeSnapshot(s)
	}
}

func (db *DB) closeSnapshot(s snapshot) {
	db.readers.close(s.rev)
	db.order.unpin(s.pin)
}

// eventSlab hands out the events of commits from slices of many: one
// object for the collector instead of one a commit, and, as events leave
// the history in the order they came, none of them mixed in among
// long-lived objects of its size: when entries were objects of 80 bytes,
// as an event is, the events leaving the history left holes in the
// entries' spans of memory that only entries created later could fill).
type eventSlab struct{ free []pubsub.Event }

// eventSlabSize is how many events a slab holds: a slab stays as long as
// any of its events, in the history or held by a subscriber.
const eventSlabSize = 64

// take returns n zeroed events.
func (s *eventSlab) take(n int) []pubsub.Event {
	if n > eventSlabSize/4 {
		return make([]pubsub.Event, n)
	}
	if len(s.free) < n {
		s.free = make([]pubsub.Event, eventSlabSize)
	}
	ev := s.free[:n:n]
	s.free = s.free[n:]
	return ev
}
