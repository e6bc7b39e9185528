package engine

import (
	"github.com/livekv/livekv/pubsub"

	"fmt"
	"time"
)

// Update runs fn in a write transaction. If fn returns nil, every write it
// made commits at once, under one new revision; if fn returns an error or
// panics, none of them does and the error (or the panic) is passed on.
// Write transactions run one at a time, so they are serializable; readers
// never wait for them.
func (db *DB) Update(fn func(tx *Tx) error) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	tx := &Tx{}
	db.begin(tx)
	committed := false
	defer func() {
		if !committed {
			tx.rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	tx.commit()
	committed = true
	return nil
}

// update runs one write on the reused transaction; the DB's own
// single-operation methods use it.
func (db *DB) update(fn func(tx *Tx) error) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	tx := &db.wtx
	db.begin(tx)
	if err := fn(tx); err != nil {
		tx.rollback()
		return err
	}
	tx.commit()
	return nil
}

// begin starts a write transaction; db.wmu is held.
func (db *DB) begin(tx *Tx) {
	tx.db = db
	tx.writable = true
	tx.done = false
	tx.rev = db.rev + 1
	tx.now = db.now()
	tx.writes = tx.writes[:0]
}

// rollback restores every entry the transaction changed.
func (tx *Tx) rollback() {
	db := tx.db
	for i := len(tx.writes) - 1; i >= 0; i-- {
		w := tx.writes[i]
		w.e.head.Store(w.old)
		if w.created {
			w.e.gone.Store(true)
			db.index.remove(w.e)
			db.order.remove(w.e)
		}
		tx.writes[i] = txWrite{}
	}
	tx.writes = tx.writes[:0]
	tx.done = true
	db.stats.rollbacks.Add(1)
}

// commit makes the transaction's writes visible under its revision. A
// transaction that wrote nothing takes no revision.
func (tx *Tx) commit() {
	tx.done = true
	if len(tx.writes) == 0 {
		return
	}
	db := tx.db
	events := make([]pubsub.Event, len(tx.writes))
	at := time.Unix(0, tx.now)
	for i, w := range tx.writes {
		v := w.e.head.Load()
		events[i] = pubsub.Event{Revision: tx.rev, Type: v.kind, Key: w.e.key, Value: v.value, Time: at}
		if w.old != nil && !w.old.deleted() && w.old.expires != 0 {
			db.exp.remove(w.old.expires, w.e)
		}
		if v.deleted() {
			w.e.vis.Store(nil)
			w.e.gone.Store(true)
			db.index.remove(w.e)
			db.order.remove(w.e)
			if !w.created {
				db.keys.Add(-1)
			}
			continue
		}
		if v.expires != 0 {
			db.exp.add(v.expires, w.e)
		}
		w.e.vis.Store(v)
		if w.created {
			db.keys.Add(1)
		}
	}
	db.rev = tx.rev
	db.committed.Store(tx.rev)
	db.broker.Publish(pubsub.Batch{Revision: tx.rev, Events: events})

	// Drop the versions no snapshot can read any more: a snapshot opened
	// from now on reads at tx.rev or later.
	oldest := db.readers.oldest()
	for i, w := range tx.writes {
		v := w.e.head.Load()
		for v != nil && v.rev > oldest {
			v = v.prev.Load()
		}
		if v != nil {
			v.prev.Store(nil)
		}
		tx.writes[i] = txWrite{}
	}
	tx.writes = tx.writes[:0]
	db.stats.commits.Add(1)
}

// View runs fn in a read-only transaction that sees one consistent snapshot:
// the database as of the newest committed revision when View began. Writes
// inside it return ErrReadOnly. View never waits for writers.
func (db *DB) View(fn func(tx *Tx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	db.stats.views.Add(1)
	tx := &Tx{db: db, now: db.now()}
	tx.snap, tx.rev = db.snapshot()
	defer db.readers.close(tx.rev)
	defer func() { tx.done = true }()
	return fn(tx)
}

// snapshot opens a snapshot: a copy of the ordered tree and the revision to
// read it at. The caller closes it with db.readers.close(rev).
func (db *DB) snapshot() (t treeCopy, rev int64) {
	t = db.order.copy(func() {
		rev = db.readers.open(db.committed.Load)
	})
	return t, rev
}

func errInvalidTTL(d time.Duration) error {
	return fmt.Errorf("%w: negative TTL %v", ErrInvalidOptions, d)
}
