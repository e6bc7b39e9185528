package engine

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
)

// kindFromWAL is the event type of a log record's write kind (the log's
// decoder refuses any other kind). An array, not a map: it is read for
// every write replayed or applied.
var kindFromWAL = [...]pubsub.Type{wal.KindPut: pubsub.Put, wal.KindPatch: pubsub.Patch,
	wal.KindIncrement: pubsub.Increment, wal.KindDelete: pubsub.Delete, wal.KindExpire: pubsub.Expire}

// eventType is kindFromWAL[k], or 0 for a kind it does not know.
func eventType(k byte) pubsub.Type {
	if int(k) < len(kindFromWAL) {
		return kindFromWAL[k]
	}
	return 0
}

// replay applies one transaction read from the log at Open: its writes
// again, as of its commit time, under its revision. Its keys and values
// point into the log's read buffer (wal.Replay.Borrow): the arena copies
// those it keeps into its chunks, and those too large for a chunk, which
// it would keep as they are, are cloned here.
func (db *DB) replay(r *wal.Tx) error {
	if r.Revision != db.rev+1 {
		// Every commit takes the next revision and is logged, so a gap
		// means records are missing.
		return fmt.Errorf("%w: the log goes from revision %d to %d", wal.ErrCorrupt, db.rev, r.Revision)
	}
	for i := range r.Writes {
		w := &r.Writes[i]
		if err := db.opts.checkLimits(w.Key, w.Value); err != nil {
			return err
		}
		w.Key, w.Value = db.vals.own(w.Key), db.vals.own(w.Value)
	}
	db.historyNext(r.Revision)
	_, err := db.apply(r) // and publishes it to the history
	db.restored = r.Revision
	return err
}

// apply writes the record's post-images again, as of its commit time,
// under its revision, and commits them; db.wmu is held, or Open runs.
func (db *DB) apply(r *wal.Tx) (int64, error) {
	tx := &db.wtx
	db.beginAt(tx, r.Time)
	tx.rev = r.Revision
	for _, w := range r.Writes {
		e, cur := tx.lookup(w.Key)
		if w.Created {
			cur = shown{} // deleted and written again in the transaction
		}
		tx.write(w.Key, e, cur, &version{value: w.Value, expires: w.Expires, kind: eventType(w.Kind)})
	}
	tx.applied = db.repl != nil
	return tx.commit()
}

// restoreHistory gives the broker's history a transaction that the
// snapshot already holds, so that a subscriber can resume from before the
// snapshot, and from before the restart. Its keys and values point into
// the log's read buffer (wal.Replay.Borrow): each event's key and value
// are copied together into bytes that into hands out.
func (db *DB) restoreHistory(r *wal.Tx, into *eventBytes) error {
	db.historyNext(r.Revision)
	b := pubsub.Batch{Revision: r.Revision, Events: db.events.take(len(r.Writes))}
	at := time.Unix(0, r.Time)
	for i, w := range r.Writes {
		kv := into.take(len(w.Key) + len(w.Value))
		copy(kv, w.Key)
		copy(kv[len(w.Key):], w.Value)
		key, value := unsafe.String(&kv[0], len(w.Key)), "" // a key is never empty
		if len(w.Value) > 0 {
			value = unsafe.String(&kv[len(w.Key)], len(w.Value))
		}
		b.Events[i] = pubsub.Event{Revision: r.Revision, Type: eventType(w.Kind), Key: key, Value: value, Time: at}
	}
	db.broker.Publish(b)
	db.restored = r.Revision
	return nil
}

// eventBytes hands out the bytes of the events that Open restores to the
// history from chunks that many events share, rather than an allocation
// each. The bytes it hands out are never handed out again nor written
// after the copy; a chunk lives while any string into it does, and the
// history drops events oldest first, so chunks go in turn.
type eventBytes struct{ free []byte }

// eventChunk is the size of eventBytes' chunks; an event of more than a
// quarter of one gets an allocation of its own.
const eventChunk = 64 << 10

func (eb *eventBytes) take(n int) []byte {
	if n > eventChunk/4 {
		return make([]byte, n)
	}
	if len(eb.free) < n {
		eb.free = make([]byte, eventChunk)
	}
	b := eb.free[:n:n]
	eb.free = eb.free[n:]
	return b
}

// historyNext readies the broker for the events of revision rev: its
// history must end right before rev, or, if there is a gap (Repair dropped
// part of the log) or no broker yet, it starts anew at rev.
func (db *DB) historyNext(rev int64) {
	if db.broker != nil && db.restored == rev-1 {
		return
	}
	if db.broker != nil {
		db.broker.Close()
	}
	db.broker = pubsub.NewBroker(rev-1, &pubsub.Options{HistoryEvents: db.opts.HistoryEvents, HistoryBytes: db.opts.HistoryBytes})
	db.restored = rev - 1
}

// restoreRevision starts recovery from a snapshot taken at rev.
func (db *DB) restoreRevision(rev int64) error {
	db.rev = rev
	db.committed.Store(rev)
	return nil
}

// restoreItems loads the keys of a snapshot that Replica.Restore
// installs, in key order, exactly as they were; their keys and values
// are their own (not borrowed).
func (db *DB) restoreItems(items []wal.Item) {
	es := make([]*entry, len(items))
	for i := range items {
		es[i] = db.restoreEntry(&items[i], false)
		db.index.put(es[i])
	}
	db.order.loadAll(es) // a snapshot's items come in key order
}

// restoreEntry makes the entry of one key of the snapshot, exactly as it
// was, and adds it to the expiries; the tree and the index are the
// caller's. At Open (open), the item's key and value point into the log's
// read buffer, which is used again: what is not copied into a chunk is
// cloned; the arena is not in use yet; and the entry is a new one, filled
// with plain stores, that no other goroutine reaches before the loader
// gets it through a channel. Otherwise (Replica.Restore) the item's
// strings are its own, a compaction may run (arena.restore), and entries
// may be used again, which readers may still load.
func (db *DB) restoreEntry(it *wal.Item, open bool) *entry {
	a := db.vals
	// The visible copy alone: no writer or snapshot needs the version as
	// an object (head stays nil until the key is written).
	v := version{value: it.Value, rev: it.Revision, createRev: it.CreateRevision,
		ver: it.Version, expires: it.Expires, kind: pubsub.Put}
	k := it.Key
	if open {
		v.value, k = a.own(v.value), a.own(k) // they point into the read buffer
	}
	v.value, v.chunk = a.restore(&a.writer, v.value, it.Revision, !open)
	k, kchunk := a.restore(&a.keys, k, 0, !open)
	var e *entry
	if open {
		e = db.entries.take()
		e.setKeyFresh(db.entries.tab.ref(kchunk, k), len(k))
		e.vis.storeFresh(&v, db.entries.tab.ref(v.chunk, v.value))
	} else {
		e = db.allocEntry(k, kchunk)
		e.vis.store(&v, db.entries.tab.ref(v.chunk, v.value))
	}
	if v.expires != 0 {
		db.exp.add(v.expires, e)
	}
	db.keys.Add(1)
	return e
}

// indexLoadBatch is how many entries a snapshot's loader hands the index
// at a time, and indexLoadQueue how many batches may wait.
const (
	indexLoadBatch = 4096
	indexLoadQueue = 4
)

// indexLoader loads a snapshot at Open in two steps that run side by
// side: the log's reader decodes each item and makes its entry (item),
// and a goroutine puts the entries into the tree and the index, whose
// inserts miss the cache and would otherwise take a third of the time. The goroutine
// starts with the first item and ends in finish, which must be called
// before anything reads the index, error or not.
type indexLoader struct {
	db    *DB
	batch []*entry
	queue chan []*entry
	done  chan struct{}
}

func (l *indexLoader) item(it *wal.Item) error {
	if err := l.db.opts.checkLimits(it.Key, it.Value); err != nil {
		return err
	}
	if l.queue == nil {
		l.queue = make(chan []*entry, indexLoadQueue)
		l.done = make(chan struct{})
		go l.run()
	}
	l.batch = append(l.batch, l.db.restoreEntry(it, true))
	if len(l.batch) == indexLoadBatch {
		l.queue <- l.batch
		l.batch = make([]*entry, 0, indexLoadBatch)
	}
	return nil
}

func (l *indexLoader) run() {
	defer close(l.done)
	var by [indexShards][]hashedEntry
	for batch := range l.queue {
		l.db.order.loadAll(batch)
		l.db.index.putAll(batch, &by)
	}
}

// finish puts the entries still held into the index and waits for the
// goroutine to end. It may be called again.
func (l *indexLoader) finish() {
	if l.queue == nil {
		return
	}
	if len(l.batch) > 0 {
		l.queue <- l.batch
		l.batch = nil
	}
	close(l.queue)
	<-l.done
	l.queue = nil
}
