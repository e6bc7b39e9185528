package engine

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
)

// Replicator takes the place of the write-ahead log for a database that a
// replicated log (package cluster) keeps durable; see OpenReplica.
type Replicator interface {
	// Append is given each transaction a writer commits, under the writer
	// lock, in revision order, right after it is applied in memory and
	// before it is visible. It must not wait for Replica.Publish or take
	// any lock that a caller of it may hold while waiting for one. An
	// error rolls the transaction back; the writer gets it as it is.
	Append(tx *wal.Tx) error
	// WaitDurable returns once revision rev is durable and published
	// (Replica.Publish(rev) has run), or with the error that says why it
	// will not be (or that nobody can know). The writer of rev, and a
	// transaction that read rev's writes, get that error as it is. A
	// revision may be appended again after an Abandon; the DB itself
	// tells the writers of the abandoned one (ErrAbandoned) if
	// WaitDurable reports the new one durable.
	WaitDurable(rev int64) error
}

// ErrAbandoned is returned to a writer on a replica whose commit, or a
// speculative commit it read, Replica.Abandon rolled back, when the
// replicator itself reported success: the revision committed, but as
// another transaction. The write did not happen.
var ErrAbandoned = errors.New("engine: commit abandoned")

// ErrOutOfOrder is returned by Replica.ApplyCommitted for a transaction
// that is not the next revision, or while speculative commits wait.
var ErrOutOfOrder = errors.New("engine: replicated transaction out of order")

// Replica controls a database whose commits a replicated log keeps
// durable (package cluster builds on it). It keeps the DB's method set
// the same for everyone else.
//
// On the node that executes writes (the leader), Update and the other
// writes run as usual: each commit is applied in memory, handed to
// Options.Replicator.Append and queued, speculative, unseen by readers
// and subscribers, until Publish makes it visible once the log has it;
// Abandon rolls back those the log will never have. On the other nodes,
// ApplyCommitted applies what the log committed. Snapshot and Restore
// carry the whole state, in the format of Backup.
type Replica struct{ db *DB }

// OpenReplica opens a database in memory whose commits go to
// opts.Replicator (which must be set) instead of a log: a commit waits in
// Replicator.WaitDurable, not for a fsync, and becomes visible only with
// Publish. The background sweeper does not run (SweepInterval is
// ignored): the leader expires keys with Replica.Sweep, and the others
// apply those expiries. Until its expiry commits, a key is there to
// every read and transaction whatever the clock says (unlike on a DB
// that Open opens, whose reads hide it from the instant it expires), so
// that the state at a revision is the same on every node. Checkpoints do
// nothing. Close does not wait for writers in WaitDurable: close the
// replicator too, so that they return. The clock of write transactions
// and of Sweep, which decides expiry times, never goes below the newest
// commit time the replica applied or handed on, so that time does not
// run backwards when another node takes over.
func OpenReplica(opts *Options) (*DB, *Replica, error) {
	if opts == nil || opts.Replicator == nil {
		return nil, nil, fmt.Errorf("%w: OpenReplica needs a Replicator", ErrInvalidOptions)
	}
	o := *opts
	o.SweepInterval = -1
	o.Replicator = nil
	db, err := Open("", &o)
	if err != nil {
		return nil, nil, err
	}
	db.repl = opts.Replicator
	db.opts.Replicator = opts.Replicator
	return db, &Replica{db: db}, nil
}

// ApplyCommitted applies a transaction that the replicated log committed
// and another node executed, and makes it visible at once: its writes
// again, as of its commit time, under its revision, with the same events
// for subscribers. tx.Revision must be the DB's revision plus one, and no
// speculative commit may be waiting (Abandon them first); otherwise it
// returns an error that wraps ErrOutOfOrder and changes nothing.
func (r *Replica) ApplyCommitted(tx *wal.Tx) error {
	db := r.db
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.closed.Load() {
		return ErrClosed
	}
	if committed := db.committed.Load(); db.rev != committed {
		return fmt.Errorf("%w: revisions %d to %d are speculative; abandon them first", ErrOutOfOrder, committed+1, db.rev)
	}
	if tx.Revision != db.rev+1 {
		return fmt.Errorf("%w: revision %d applied after %d", ErrOutOfOrder, tx.Revision, db.rev)
	}
	if len(tx.Writes) == 0 {
		return fmt.Errorf("%w: transaction %d writes nothing", wal.ErrCorrupt, tx.Revision)
	}
	if _, err := db.apply(tx); err != nil {
		return err
	}
	db.lastTime = max(db.lastTime, tx.Time)
	db.publish(tx.Revision)
	db.bury()
	return nil
}

// Publish makes the speculative commits up to revision rev visible to
// readers and subscribers, in revision order: the log has them. It takes
// no writer lock, so it may run while a writer waits in Append, or even
// before a commit that Append handed on is queued: that commit then
// publishes itself. Revisions already visible are passed over.
func (r *Replica) Publish(rev int64) {
	db := r.db
	db.pub.mu.Lock()
	db.pub.target = max(db.pub.target, rev)
	db.pub.mu.Unlock()
	db.publish(rev)
}

// Abandon rolls back every speculative commit, newest first: the ones
// handed to Replicator.Append but not yet published, which the log will
// never have (another leader took over). Their writes leave the index,
// the order, the expiry set and the key count as they were, and the DB's
// revision goes back to the newest published one, so the next commit or
// ApplyCommitted takes the one after it. Readers and subscribers never
// saw them. It returns how many commits it rolled back. Their writers,
// waiting in WaitDurable, learn of it from the replicator.
func (r *Replica) Abandon() int {
	db := r.db
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.abandon()
}

// abandon is Abandon; db.wmu is held.
func (db *DB) abandon() int {
	db.pub.mu.Lock()
	defer db.pub.mu.Unlock()
	queue := db.pub.queue
	committed := db.committed.Load()
	for i := len(queue) - 1; i >= 0; i-- {
		c := queue[i]
		for j := len(c.writes) - 1; j >= 0; j-- {
			w := c.writes[j]
			db.entries.tab.setHead(w.e, w.old)
			db.rehold(w.e, w.old)
			if present(w.v) && w.v.expires != 0 {
				db.exp.remove(w.v.expires, w.e)
			}
			had, hadExpires := w.e.before(w.old, w.created)
			if had && hadExpires != 0 {
				db.exp.add(hadExpires, w.e)
			}
			db.keys.Add(one(had) - count(w.v))
			switch {
			case w.created:
				db.forget(w.e)
			case w.old != nil && w.old.deleted() && w.old.rev <= committed:
				// A visible deletion, whose burial the abandoned write
				// prevented: bury it again.
				db.pub.graves = append(db.pub.graves, committedWrite{e: w.e, v: w.old})
			}
		}
		queue[i] = nil
	}
	if len(queue) > 0 {
		db.pub.lost = append(db.pub.lost, committed+1)
	}
	db.pub.queue = queue[:0]
	db.pub.target = committed
	db.rev = committed
	return len(queue)
}

// Snapshot is a copy-on-write view of a database at one revision, kept
// until Close: what a replicated log's snapshot of the state holds. Its
// methods are not for use from several goroutines at once.
type Snapshot struct {
	db     *DB
	s      snapshot
	closed bool
}

// Snapshot opens a view at the newest published revision, in constant
// time; writers go on meanwhile. Close it when done: until then the
// database keeps the versions it reads.
func (r *Replica) Snapshot() (*Snapshot, error) {
	if r.db.closed.Load() {
		return nil, ErrClosed
	}
	return r.db.openSnapshot(), nil
}

func (db *DB) openSnapshot() *Snapshot {
	return &Snapshot{db: db, s: db.snapshot()}
}

// Revision is the revision the snapshot holds the state at.
func (s *Snapshot) Revision() int64 { return s.s.rev }

// Write writes the snapshot to w in the format of Backup, streamed. An
// error from w is returned as it is.
func (s *Snapshot) Write(w io.Writer) error {
	if s.closed {
		return fmt.Errorf("%w: snapshot closed", ErrClosed)
	}
	_, err := wal.WriteSnapshot(w, s.s.rev, snapshotItems(s.s.t, s.s.rev))
	return err
}

// Close releases the snapshot. Closing twice does nothing.
func (s *Snapshot) Close() {
	if !s.closed {
		s.closed = true
		s.db.closeSnapshot(s.s)
	}
}

// WriteSnapshot writes a snapshot at the newest published revision to w,
// as DB.Backup does, and returns that revision.
func (r *Replica) WriteSnapshot(w io.Writer) (rev int64, err error) {
	return r.db.Backup(w)
}

// Restore replaces the whole state with a snapshot read from r (as
// Snapshot.Write or Backup wrote it), at the snapshot's revision, which
// may be below the current one. Speculative commits are abandoned first.
// The stream is read and checked in full before anything changes: on an
// error, a damaged stream (wal.ErrCorrupt) included, the state is as it
// was. Subscriptions end with a *pubsub.CompactedError (ErrCompacted),
// since the history they follow is gone; the history starts again after
// the snapshot's revision. Views and ranges begun before go on reading
// the old state; a Get, and a View or a range that begins, while the
// state is being replaced waits until it is, and reads the new state
// whole.
func (r *Replica) Restore(src io.Reader) error {
	db := r.db
	if db.closed.Load() {
		return ErrClosed
	}
	var items []wal.Item
	rev, err := wal.ReadSnapshotFrom(src, db.opts.maxRecord(), wal.Replay{Item: func(it *wal.Item) error {
		items = append(items, *it)
		return nil
	}})
	if err != nil {
		return fmt.Errorf("engine: restore: %w", err)
	}

	db.wmu.Lock()
	if db.closed.Load() {
		db.wmu.Unlock()
		return ErrClosed
	}
	db.ending.Add(1)
	defer db.ending.Done()
	// Readers without the writer lock wait from here until the new state
	// is whole (DB.readGate).
	done := make(chan struct{})
	db.restoreDone.Store(&done)
	db.restoring.Add(1)
	db.abandon()
	before := db.committed.Load()
	// Nothing is queued now, and nothing can be while wmu is held, so
	// publish stores no visible version meanwhile.
	// The copy stays pinned while it is read: the tree lets go of its
	// pages as the scan takes the entries out, and a reader's unpin
	// would have them used again under it.
	all, p := db.order.copy(func() {})
	all.Scan(func(ti treeItem) bool {
		e := all.entry(ti)
		db.index.remove(e)
		db.order.remove(e)
		return true
	})
	db.order.unpin(p)
	// The old state's entries are used again for the new state's keys
	// as they would be after deletions: once no view reads them. Those
	// that none reads now are kept for the new keys, as many as there
	// are (the store's size, which allocEntry goes by, is 0 meanwhile).
	db.reclaimEntries(max(slabEntries, len(items)))
	db.exp = newExpiries(db.entries.tab)
	db.keys.Store(0)
	db.pub.mu.Lock()
	db.vals.restores++ // a compaction of the old state stops
	// The revision goes back to the snapshot's, perhaps below the
	// blocks' fullRev; no commit that could still hold a value in a full
	// block is to come (abandon took back every one queued), so the
	// blocks the old state leaves are used again whatever the revision.
	db.vals.mu.Lock()
	db.vals.forgetRevisions()
	db.vals.mu.Unlock()
	db.pub.mu.Unlock()
	db.restoreItems(items)
	db.rev = rev
	db.pub.mu.Lock()
	db.pub.graves = nil
	db.pub.held = nil // versions of entries no longer indexed
	db.pub.target = rev
	db.committed.Store(rev)
	old := db.broker
	// The new broker counts from zero: the old one's counts carry on.
	oldStats := old.Stats()
	db.pub.feed.plus(counted(oldStats, pubsub.Stats{}))
	db.broker = pubsub.NewBroker(rev, &pubsub.Options{HistoryEvents: db.opts.HistoryEvents, HistoryBytes: db.opts.HistoryBytes})
	db.restored = rev
	db.pub.mu.Unlock()
	db.restoring.Add(1)
	close(done)
	db.revWaiters.wake()
	db.wmu.Unlock()
	old.CloseWith(&pubsub.CompactedError{Revision: before, Oldest: rev + 1})
	// And what it counted as it closed, the subscriptions it ended.
	db.pub.mu.Lock()
	db.pub.feed.plus(counted(old.Stats(), oldStats))
	db.pub.mu.Unlock()
	return nil
}

// NextExpiry returns the expiry time of the key that expires first, and
// false if no key has a TTL, with the time now by the clock that Sweep
// judges by (Options.Now, never below the newest commit time), so that
// the node that sweeps can sweep as soon as a key is due.
func (r *Replica) NextExpiry() (first, now time.Time, ok bool) {
	db := r.db
	db.wmu.Lock()
	defer db.wmu.Unlock()
	now = time.Unix(0, db.txNow())
	x, ok := db.exp.t.Min()
	if !ok {
		return time.Time{}, now, false
	}
	return time.Unix(0, x.at), now, true
}

// Sweep expires up to 1024 keys whose time has come (fewer if their keys
// pass 8 MiB), in one write transaction that goes through the replicator
// like any other, and returns how many, and whether it stopped at those
// bounds: then more may be due. Only the node that executes writes
// sweeps; call it again while more is true.
func (r *Replica) Sweep() (n int, more bool, err error) {
	return r.db.sweep()
}
