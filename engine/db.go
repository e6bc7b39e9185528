package engine

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
)

// DB is a key-value database. It is safe for use by many goroutines at once.
// Open one with Open and Close it when done.
//
// Lock order: a lock may be taken while holding those to its left, never
// the reverse.
//
//	wmu → ordered.mu → readers.mu       (a write; a snapshot taken under wmu)
//	wmu → index shard                   (a write)
//	wmu → pub.mu → readers.mu           (commit, publish, bury)
//	wmu → pub.mu → arena.mu             (publish, a compaction)
//	wmu → pub.mu → the broker's locks   (publish; Subscribe under wmu)
//	wmu → pub.mu → index shard, ordered.mu (Replica.Abandon)
//	wmu → pub.mu → entryTable.mu       (a visit of idle heads, in a write or Abandon)
//	wmu → the log's mu                  (Append)
//	ckpt.mu → ordered.mu → readers.mu   (a checkpoint's snapshot)
//	ckpt.mu → the broker's hmu          (what the history still needs)
//	ckpt.mu → the log's snapMu → mu     (writing the snapshot)
//	pub.mu → arena.mu → bg.mu           (publish starting a compaction)
//	bg.mu                               (last: starting background work)
//
// Readers take no lock but an index shard's read lock, or ordered.mu and
// readers.mu to open a snapshot. No fsync and no subscriber ever runs
// under wmu: a writer waits for the disk after releasing it.
type DB struct {
	opts Options
	dir  string

	// wmu serialises writers: a write transaction holds it from its first
	// operation to its commit or rollback.
	wmu sync.Mutex
	rev int64 // last committed revision; guarded by wmu
	wtx Tx    // the write transaction, reused; guarded by wmu
	// events is where commits take their events from; guarded by wmu
	// (at Open, by the replay, which runs before anything else).
	events eventSlab
	// entries is where new keys take their entries from; guarded by wmu
	// (at Open, by the replay).
	entries entries
	exp     *expiries

	// committed is the newest revision readers may see.
	committed atomic.Int64
	// restoring is odd while Replica.Restore replaces the state, which
	// it does in place, key by key. Readers that do not hold wmu (Get,
	// and the snapshots of Range, View, Backup and checkpoints) read
	// only while it is even, and read again if it moved meanwhile
	// (readGate), so that they see the old state or the new one whole.
	// Each Restore stores a new restoreDone before it makes the count
	// odd, for them to wait on. Every Get loads the count twice: it has
	// a line of the processor's cache to itself, which only a Restore
	// writes; next to committed, which every commit writes, each commit
	// would take the line from the readers' caches.
	_           [64]byte
	restoring   atomic.Uint64
	_           [56]byte
	restoreDone atomic.Pointer[chan struct{}] // closed when the Restore under way ends
	// floor is the latest time (unix ns) at which a read judged expiry
	// and found a key expired, or began a scan: expiry is judged by
	// the clock but never below it (DB.now), so that a clock that steps
	// back (Options.Now; a wall clock corrected) does not bring back a
	// key a read has seen expire. Every Get loads it and few write it,
	// so it has a line of its own.
	_     [56]byte
	floor atomic.Int64
	_     [56]byte
	// revWaiters wakes WaitRevision when committed moves.
	revWaiters revWaiters

	broker *pubsub.Broker // replaced only by Replica.Restore, under wmu and pub.mu
	log    *wal.Log       // nil in memory

	// repl, set by OpenReplica, replaces the log: commits are handed to
	// it and wait for it, and Replica.Publish makes them visible.
	repl Replicator
	// lastTime is the newest commit time handed to repl or applied, in
	// unix ns; the clock of a replica's transactions never goes below
	// it. Guarded by wmu.
	lastTime int64

	// restored is the newest revision whose events Open gave the broker's
	// history from the log.
	restored int64

	// pub orders the commits on their way to readers and subscribers.
	pub struct {
		mu     sync.Mutex       // guards queue, graves, held and target
		queue  []*commit        // committed, not yet visible, in revision order
		graves []committedWrite // visible deletions whose entries are still indexed
		held   []heldVersion    // newest versions a snapshot still reads below, by revision
		// emptied holds the blocks a commit being published left with
		// no live bytes (DB.account).
		emptied []uint32
		// target is the newest revision Replica.Publish was asked for: a
		// commit queued at or below it, after Publish ran, publishes
		// itself.
		target int64
		// lost holds, for each Replica.Abandon that rolled something
		// back, the first revision it took back; it changes under wmu
		// too. A writer notes its length when its transaction ends, and
		// after waiting checks whether an Abandon since took back what
		// it wrote or read: the replicator, which knows revisions only,
		// may have seen another commit at the same revision succeed.
		lost []int64
		// feed is added to the broker's counters in Stats: what the
		// brokers a Restore replaced counted, less what Open's replay
		// published, so that the counters only grow, from zero at Open.
		feed feedCounts
	}
	// vals holds the bytes of keys and values, for the DB's life.
	vals    *arena
	index   *index
	order   *ordered
	readers readers
	keys    atomic.Int64 // live keys, counting expired ones not yet swept

	closed   atomic.Bool
	stop     chan struct{} // closed by Close to stop the sweeper
	shut     chan struct{} // closed when the first Close has finished
	sweeping sync.WaitGroup
	// ending counts the Restores that still end the subscriptions of
	// the state they replaced (Replica.Restore); Close waits for them.
	// Added to under wmu while not closed.
	ending sync.WaitGroup

	ckpt struct {
		mu      sync.Mutex   // one checkpoint at a time
		running atomic.Bool  // a background checkpoint is under way
		at      atomic.Int64 // the log's Written() when the last one began
	}
	// bg tracks background work that Close waits for; mu orders starting
	// it against Close.
	bg struct {
		mu     sync.Mutex
		closed bool // guarded by mu
		wg     sync.WaitGroup
	}

	// rest is the visit that lets the slabs' idle heads go once writes
	// stop (headsAtRest); guarded by wmu.
	rest struct {
		after time.Duration // headsRestAfter, at Open
		timer *time.Timer
	}

	stats counters
}

// Open opens the database in dir, creating it if needed. An empty dir opens
// a database in memory only, gone when it is closed. A nil opts means the
// defaults.
func Open(dir string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	tab := newEntryTable()
	db := &DB{
		opts:    o,
		dir:     dir,
		vals:    newArena(&tab.chunks, o.chunkSize, o.compactMinDead),
		index:   newIndex(tab),
		order:   newOrdered(tab),
		entries: newEntries(tab),
		exp:     newExpiries(tab),
		stop:    make(chan struct{}),
		shut:    make(chan struct{}),
	}
	db.wtx.db = db
	db.floor.Store(math.MinInt64) // a clock may be before 1970
	// No background work while the log replays: an Open that fails has
	// nothing to stop.
	db.bg.closed = true
	if dir != "" {
		ld := indexLoader{db: db}
		var events eventBytes
		l, err := wal.Open(dir, &wal.Options{FS: o.FS, Sync: o.Sync, SegmentSize: o.SegmentSize, MaxRecord: o.maxRecord(), Repair: o.Repair, Logf: o.Logf},
			wal.Replay{Snapshot: db.restoreRevision, Items: db.index.reserve, Item: ld.item,
				Borrow:        true, // restoreEntry, restoreHistory and replay copy what they keep
				History:       func(tx *wal.Tx) error { return db.restoreHistory(tx, &events) },
				HistoryEvents: o.historyEvents(),
				Tx: func(tx *wal.Tx) error {
					ld.finish() // the snapshot is all in the index before a write looks a key up
					return db.replay(tx)
				}})
		ld.finish()
		if err != nil {
			if db.broker != nil {
				db.broker.Close()
			}
			var over *OverLimitError
			if errors.As(err, &over) {
				return nil, fmt.Errorf("open %s: %w", dir, over)
			}
			return nil, fmt.Errorf("engine: open %s: %w", dir, err)
		}
		db.log = l
	}
	db.historyNext(db.rev + 1)
	// The counters start from zero: what the replay counted, applying
	// and publishing the log again, is not this DB's work.
	db.stats.writes.Store(0)
	db.stats.commits.Store(0)
	db.pub.feed = counted(pubsub.Stats{}, db.broker.Stats())
	db.bg.closed = false // no other goroutine has db yet
	// Heads set while the log replayed wait for the first visit at rest.
	db.rest.after = headsRestAfter
	tab.atRest = db.armRest
	if tab.headsLately {
		tab.restArmed = true
		db.armRest()
	}
	if o.SweepInterval > 0 {
		db.sweeping.Add(1)
		go db.sweepLoop(o.SweepInterval)
	}
	return db, nil
}

// Close closes the database. Operations under way finish first; later ones
// return ErrClosed. Closing a closed DB does nothing and returns nil, once
// the first Close has returned: the log is closed and its folder free.
// Close waits for the goroutines the DB runs, so it must not be called
// from a function the DB calls on one of them (Options.Logf, a
// subscription's Filter): it would wait for itself.
func (db *DB) Close() error {
	db.wmu.Lock()
	if db.closed.Swap(true) {
		db.wmu.Unlock()
		<-db.shut
		return nil
	}
	defer close(db.shut)
	close(db.stop)
	if db.rest.timer != nil {
		db.rest.timer.Stop() // one already running finds the DB closed
	}
	last := db.rev // no transaction commits after closed is set
	db.wmu.Unlock()
	db.sweeping.Wait()
	db.bg.mu.Lock()
	db.bg.closed = true // no background work starts after this
	db.bg.mu.Unlock()
	db.bg.wg.Wait()
	db.ending.Wait()
	var err error
	if db.log != nil {
		// Writes that were waiting for the disk are written and synced
		// now. Their writers publish them too, but maybe only after the
		// broker has closed: publish them here, so that subscriptions
		// get every committed event before they end.
		err = db.log.Close()
		if err == nil {
			db.publish(last)
		}
	}
	db.broker.Close()
	return err
}

// Revision returns the newest committed revision; 0 for a new database.
func (db *DB) Revision() int64 { return db.committed.Load() }

// now is the time expiry is judged at: the clock (Options.Now), but
// never below a time at which a read found a key expired (DB.floor).
func (db *DB) now() int64 { return max(db.opts.Now().UnixNano(), db.floor.Load()) }

// holdClock keeps the clock that judges expiry from going below at
// from now on: a read judged expiry at at, and found a key expired (or
// scanned, which may have). On a replica at is math.MinInt64 (readAt):
// nothing to hold.
func (db *DB) holdClock(at int64) {
	for {
		f := db.floor.Load()
		if at <= f || db.floor.CompareAndSwap(f, at) {
			return
		}
	}
}

// readAt is the time reads judge expiry at: the clock, or on a replica
// (OpenReplica) never, since a replica's state at a revision must be the
// same on every node whatever their clocks say. There a key is there
// until its expiry commits, as a change the leader's sweep makes.
func (db *DB) readAt() int64 {
	if db.repl != nil {
		return math.MinInt64
	}
	return db.now()
}

// Err reports whether the DB takes writes, for a readiness check: nil
// if it does; ErrClosed once closed; the error of its log's failed write
// or fsync, after which every write fails until the DB is reopened.
func (db *DB) Err() error {
	if db.closed.Load() {
		return ErrClosed
	}
	if db.log != nil {
		return db.log.Err()
	}
	return nil
}

// Stats describe a DB at one moment.
type Stats struct {
	Keys     int64 // keys stored, including expired keys not yet swept
	Revision int64 // newest committed revision

	Gets       int64 // point reads, in or out of transactions
	Writes     int64 // successful writes of any kind
	Commits    int64 // write transactions committed
	Rollbacks  int64 // write transactions rolled back
	Scans      int64 // range scans started
	Expired    int64 // keys removed by the sweeper
	Snapshots  int64 // snapshots currently open (views and scans under way)
	ReadOnlyTx int64 // View calls

	// On disk; zero in memory.
	LogBytes    int64 // bytes in log segments
	Checkpoints int64 // snapshots written since Open
	Syncs       int64 // fsyncs of log segments since Open
	// SyncLatency is how long those fsyncs took.
	SyncLatency LatencyHistogram

	Subscriptions pubsub.Stats // the change feed: subscriptions, deliveries, history
}

type counters struct {
	writes, commits, rollbacks, scans, expired, views atomic.Int64
	gets                                              atomic.Int64 // in transactions; the index counts the others
}

// SyncLatency is the LatencyHistogram of the fsyncs h counts: a log's,
// or, on a cluster node, its raft log store's.
func SyncLatency(h wal.SyncHistogram) LatencyHistogram {
	return LatencyHistogram{Bounds: append([]time.Duration(nil), wal.SyncBounds[:]...), Counts: h.Counts[:], Sum: h.Sum}
}

// LatencyHistogram counts events by how long they took: Counts[i] those
// that took at most Bounds[i] (and more than Bounds[i-1]); the last of
// Counts, one longer than Bounds, those that took longer than every
// bound. Sum is the time of all of them.
type LatencyHistogram struct {
	Bounds []time.Duration
	Counts []int64
	Sum    time.Duration
}

// Stats returns counters that describe the DB.
func (db *DB) Stats() Stats {
	var ls wal.Stats
	if db.log != nil {
		ls = db.log.Stats()
	}
	db.pub.mu.Lock()
	broker, feed := db.broker, db.pub.feed
	db.pub.mu.Unlock()
	return Stats{
		LogBytes:    ls.Bytes,
		Checkpoints: ls.Snapshots,
		Syncs:       ls.Syncs,
		SyncLatency: SyncLatency(ls.SyncLatency),

		Keys:       db.keys.Load(),
		Revision:   db.committed.Load(),
		Gets:       db.index.gets() + db.stats.gets.Load(),
		Writes:     db.stats.writes.Load(),
		Commits:    db.stats.commits.Load(),
		Rollbacks:  db.stats.rollbacks.Load(),
		Scans:      db.stats.scans.Load(),
		Expired:    db.stats.expired.Load(),
		Snapshots:  db.readers.n.Load(),
		ReadOnlyTx: db.stats.views.Load(),

		Subscriptions: feed.add(broker.Stats()),
	}
}

// feedCounts are counters of the change feed (pubsub.Stats's).
type feedCounts struct {
	published, delivered, compacted, timedOut int64
}

func (f feedCounts) add(st pubsub.Stats) pubsub.Stats {
	st.Published += f.published
	st.Delivered += f.delivered
	st.Compacted += f.compacted
	st.TimedOut += f.timedOut
	return st
}

// counted returns the counters of st, less those of since.
func counted(st, since pubsub.Stats) feedCounts {
	return feedCounts{st.Published - since.Published, st.Delivered - since.Delivered, st.Compacted - since.Compacted, st.TimedOut - since.TimedOut}
}

// plus adds g to f.
func (f *feedCounts) plus(g feedCounts) {
	f.published += g.published
	f.delivered += g.delivered
	f.compacted += g.compacted
	f.timedOut += g.timedOut
}

// expiry turns SetOptions into an expiry time in unix nanoseconds.
func (db *DB) expiry(o *SetOptions, now int64) (int64, error) {
	if o == nil || o.TTL == 0 {
		return 0, nil
	}
	if o.TTL < 0 {
		return 0, fmt.Errorf("%w: negative TTL %v", ErrInvalidOptions, o.TTL)
	}
	if now > 0 && int64(o.TTL) > math.MaxInt64-now { // a clock before 1970 (Options.Now) cannot overflow
		return 0, fmt.Errorf("%w: TTL %v ends after %v, the last instant an expiry can name", ErrInvalidOptions, o.TTL, expiresAt(math.MaxInt64).UTC())
	}
	if at := now + int64(o.TTL); at != 0 {
		return at, nil
	}
	return 1, nil // 0 means no expiry: a nanosecond later
}
