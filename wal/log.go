package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/vfs"
)

// The Log's work, by file:
//
//	log.go         the Log and its Options and Stats; Open and Close
//	recover.go     what Open reads back: the snapshot, the segments, the
//	               checks of the history segments; truncating and removing
//	commit.go      Append and WaitDurable: group commit by a leader, and
//	               the interval sync
//	rotate.go      writing a group to the current segment, starting the next
//	checkpoint.go  Log.Snapshot and Log.Retain: a snapshot replaces segments
//	check.go       Check, which reads a log that is not open and reports
//
// The formats are in record.go, tx.go, segment.go and snapshot.go.
//
// Lock order, outermost first:
//
//	snapMu → mu
//
// snapMu is held for the whole of a Snapshot, file work included, which
// takes mu inside it only briefly, to read or publish state; Close takes
// snapMu before mu, and so waits for a snapshot under way. Nothing takes
// snapMu while holding mu.
//
// mu.busy is a flag under mu, not a lock: whoever sets it (a leader in
// WaitDurable, or syncLoop under SyncInterval) owns the current segment
// and the leader's fields (seg, segSize, lastGroup, lastSync, gatherTimer)
// until it clears it and broadcasts mu.cond; everyone else who needs the
// segment waits on mu.cond for !busy. The leader writes, rotates and syncs
// without mu, taking it only briefly: in gather to count what is waiting,
// in write, rotate and sync to publish sizes and counts. Close, once it
// has stopped syncLoop and waited out the last leader, owns the segment
// without setting busy: Append refuses records once closing is set, so no
// leader can start again.

// SyncPolicy says when the log fsyncs, and so what a crash can lose.
type SyncPolicy struct {
	every time.Duration // 0: every group; >0: on a timer
	never bool
}

var (
	// SyncAlways (the default) fsyncs every group of records before their
	// writers are told they are durable: a crash loses nothing that was
	// acknowledged.
	SyncAlways = SyncPolicy{}

	// SyncNever writes records to the operating system and never fsyncs
	// (Close still does): a process crash loses nothing, a machine crash
	// loses what the OS had not written back.
	SyncNever = SyncPolicy{never: true}
)

// SyncInterval writes every group at once and fsyncs every d: a machine
// crash loses at most about the last d of acknowledged writes. d must
// not be negative (Open refuses it); 0 fsyncs every group, as
// SyncAlways.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy{every: d} }

// Interval is d of SyncInterval(d); 0 for SyncAlways and SyncNever.
func (p SyncPolicy) Interval() time.Duration { return p.every }

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	FS          vfs.FS     // default vfs.OSFS
	Sync        SyncPolicy // default SyncAlways
	SegmentSize int64      // rotate after this many bytes; default 64 MiB
	MaxRecord   int        // largest record payload written or read; default DefaultMaxRecord
	// Repair truncates the log at the first bad record, dropping what
	// follows, instead of failing Open with ErrCorrupt; a torn tail is
	// truncated either way.
	Repair bool
	// Logf reports what recovery did (a torn tail truncated, a repair).
	// Default: discard.
	Logf func(format string, args ...any)
}

// withDefaults returns a copy of o, or of the zero Options if o is nil,
// with each field left zero set to its default. Open and Check both take
// their options from it, so the defaults live here alone.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.FS == nil {
		c.FS = vfs.OSFS{}
	}
	if c.SegmentSize <= 0 {
		c.SegmentSize = 64 << 20
	}
	if c.MaxRecord <= 0 {
		c.MaxRecord = DefaultMaxRecord
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Stats count the log's work.
type Stats struct {
	Records   int64 // records appended
	Groups    int64 // groups written
	Syncs     int64 // fsyncs of segments
	Segments  int   // segment files
	Bytes     int64 // bytes in segment files
	Snapshots int64 // snapshots written
	// SnapshotRevision is the revision of the newest snapshot, 0 if none.
	SnapshotRevision int64
	// SyncLatency is how long the fsyncs of segments took.
	SyncLatency SyncHistogram
}

// SyncBounds are the upper bounds of SyncHistogram's buckets.
var SyncBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// SyncHistogram counts fsyncs by how long they took: Counts[i] those that
// took at most SyncBounds[i] (and more than SyncBounds[i-1]); the last,
// those that took longer than every bound.
type SyncHistogram struct {
	Counts [len(SyncBounds) + 1]int64
	Sum    time.Duration // of every fsync counted
}

// Add counts one fsync that took d.
func (h *SyncHistogram) Add(d time.Duration) {
	i := 0
	for i < len(SyncBounds) && d > SyncBounds[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += d
}

// Replay receives what Open reads back, in order: the newest snapshot,
// if there is one, then every transaction after it. A nil func skips its
// part.
type Replay struct {
	Snapshot func(rev int64) error // called first: the snapshot's revision
	// Items, if not nil, is called after Snapshot and before the first
	// Item with how many items the snapshot's trailer says it holds: a
	// hint for sizing what the items go into. It is not called when the
	// trailer cannot be read ahead; the count is checked against the
	// items once they are read.
	Items func(n int)
	Item  func(*Item) error // then each of its items, in key order
	// Borrow, if set, hands Item, History and Tx keys and values that
	// point into the reader's buffer instead of strings of their own: an
	// Item's Key and Value, and a Tx with its Writes and their keys and
	// values, are valid only until the call returns (History and Tx are
	// given one Tx, decoded again for each record), and the callee copies
	// what it keeps. It spares two allocations an item, and three or more a
	// transaction, when the callee copies anyway.
	Borrow bool
	// History receives, before Tx, the transactions that the snapshot
	// already holds but that the log still keeps (see Log.Retain), in
	// order and without gaps: the history of changes, not state to apply.
	History func(*Tx) error
	// HistoryEvents, if above 0, is how many events (writes) the history
	// that History builds keeps: the oldest transactions, which newer ones
	// holding more events than that would push out of it, are skipped
	// unread. Which ones is worked out from the records up to the first
	// damage or gap in the log, so none that lasts is skipped
	// (given that each transaction, given to History or to Tx, adds one
	// event a write to that history, as the engine's do); a few that do
	// not last may still come (the history also drops events by size).
	HistoryEvents int
	Tx            func(*Tx) error // then each later transaction, in order
}

// segment is a segment file: the revision of its first record, its size.
type segment struct {
	first int64
	size  int64
}

// Log is a write-ahead log: segments of transaction records in a
// directory, written in groups: the first writer to wait for its record
// writes and syncs everything waiting, for everyone (see WaitDurable).
type Log struct {
	// Set by Open and not changed after.
	opts Options
	dir  string
	lock io.Closer // the directory's LOCK file; Close releases it

	marks []string // Open's: the sync marks in the segment folder (see truncate)

	// snapMu lets one Snapshot run at a time and makes Close wait for the
	// one under way. It is taken before mu, never while mu is held.
	snapMu sync.Mutex

	// mu guards the state that writers, the leader, the interval sync,
	// snapshots and Stats share. Open and Check fill it before the Log is
	// shared, without taking mu.
	mu struct {
		sync.Mutex
		cond     *sync.Cond // on mu: broadcast when durable, err or busy change, or on close
		pending  []byte     // records waiting for a leader to write them
		waiting  int        // how many records pending holds
		spare    []byte
		last     int64 // revision of the newest appended record
		durable  int64 // revision of the newest durable record
		err      error // sticky: the first write or sync that failed
		busy     bool  // a leader (or the interval sync) is using the segment
		dirty    bool  // written since the last sync
		closing  bool  // Close was called
		stopped  bool  // Close has synced and closed the segment
		stats    Stats
		segments []segment // the segment files, ascending
		snapRev  int64     // revision of the newest snapshot
		retain   int64     // a snapshot removes no segment with records after this; see Retain

		// syncFailed: a sync of a segment failed. What the OS holds of it
		// is unknown then, so no sync is tried again; after a failed
		// write alone, what was written before is whole and still synced.
		syncFailed bool
	}

	written atomic.Int64 // bytes appended to segments since Open; Written reads it without mu

	// The leader's own: whoever set mu.busy uses these without mu, and
	// Close once the last leader is done (see the lock order at the top).
	seg         vfs.File
	segSize     int64
	segSynced   int64         // how much of seg the last sync of it made durable
	segListed   bool          // seg is the last of mu.segments, its bytes counted there
	lastGroup   int           // records in the last group
	lastSync    time.Duration // how long its sync took
	gatherTimer *time.Timer

	// Made by Open and not changed after.
	kick chan struct{} // Append wakes a gathering leader; capacity 1
	stop chan struct{} // closed by Close to stop the interval sync
	done chan struct{} // closed when the interval sync has stopped
}

// The files of a log, under its directory:
//
//	LOCK                   held while the log is open
//	wal/<first-rev>.log    segments
//	wal/<first-rev>.log.sync  while Open syncs the segment (see truncate)
//	snap/<rev>.snap        the newest snapshot (while a new one is written,
//	snap/<rev>.snap.tmp    it is here until synced)
func segmentName(first int64) string { return fmt.Sprintf("%020d.log", first) }
func snapshotName(rev int64) string  { return fmt.Sprintf("%020d.snap", rev) }

// Open opens (or creates) the log in dir, takes its lock, and replays it
// into r: the newest snapshot, then every transaction after it, in
// revision order. A torn tail (what an interrupted write leaves: a last
// record cut short or zero-filled to the end) is truncated; any other bad
// record, the last one included, fails Open with ErrCorrupt unless
// opts.Repair; a damaged snapshot always fails it. Appends continue after
// the last revision replayed.
func Open(dir string, opts *Options, r Replay) (*Log, error) {
	if opts != nil && opts.Sync.every < 0 {
		// It would never fsync, where a user asked for a bound on loss.
		return nil, fmt.Errorf("wal: SyncInterval(%v): the interval is negative", opts.Sync.every)
	}
	l := &Log{opts: opts.withDefaults(), dir: dir, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.mu.retain = math.MaxInt64
	l.mu.cond = sync.NewCond(&l.mu)
	fsys := l.opts.FS
	made := missingFolders(fsys, dir) // folders made here: their entries are synced in their parents
	for _, d := range []string{l.segDir(), l.snapDir()} {
		if _, err := fsys.List(d); errors.Is(err, fs.ErrNotExist) {
			made = append(made, d)
		}
	}
	if err := l.makeFolders(made); err != nil {
		// The next Open would find them and sync none of their entries,
		// whose durability is unknown: it makes them again instead.
		removeFolders(fsys, made)
		return nil, err
	}
	lock, err := fsys.Lock(path.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	l.lock = lock
	if err := l.recover(r); err != nil {
		lock.Close()
		return nil, err
	}
	l.mu.durable = l.mu.last
	l.mu.stats = Stats{Bytes: l.mu.stats.Bytes, SnapshotRevision: l.mu.snapRev, SyncLatency: l.mu.stats.SyncLatency}
	l.gatherTimer = time.NewTimer(time.Hour)
	l.gatherTimer.Stop()
	if l.opts.Sync.every > 0 {
		go l.syncLoop(l.opts.Sync.every)
	} else {
		close(l.done)
	}
	return l, nil
}

// Exists reports whether dir holds a log: the folders of its segments
// and of its snapshots, empty or not, as Open and CreateFromSnapshot make
// them. It changes nothing; Open in a folder without them would make them.
func Exists(dir string, opts *Options) (bool, error) {
	fsys := opts.withDefaults().FS
	l := &Log{dir: dir}
	for _, d := range []string{l.segDir(), l.snapDir()} {
		if _, err := fsys.List(d); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

func (l *Log) segDir() string  { return path.Join(l.dir, "wal") }
func (l *Log) snapDir() string { return path.Join(l.dir, "snap") }

// Err returns the log's sticky error: the first write or sync that
// failed, after which the log refuses appends until reopened, or nil if
// none has. Closing is no failure: after a Close Err is what Close
// returned (a sync that failed in Close included), nil after a clean one,
// although Append then returns ErrClosed.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.err
}

// Written returns how many bytes have been appended to segments since
// Open; a caller compares it over time to decide when to snapshot.
func (l *Log) Written() int64 { return l.written.Load() }

// Stats returns counters of the log's work.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.mu.stats
	s.Segments = len(l.mu.segments)
	return s
}

// Close writes and syncs what is waiting, closes the segment and releases
// the lock. It returns the log's sticky error, if any (see Err); a later
// Close does nothing and returns the same.
func (l *Log) Close() error {
	l.snapMu.Lock() // a snapshot under way finishes first
	defer l.snapMu.Unlock()
	l.mu.Lock()
	if l.mu.closing {
		// The first Close is done: it holds snapMu until it returns.
		defer l.mu.Unlock()
		return l.mu.err
	}
	l.mu.closing = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done

	l.mu.Lock()
	defer l.mu.Unlock()
	for l.mu.busy {
		l.mu.cond.Wait()
	}
	if len(l.mu.pending) > 0 {
		l.lead() // appended, but nobody waited for them yet
	}
	if l.seg != nil && !l.mu.syncFailed && l.mu.dirty {
		l.mu.Unlock()
		err := l.sync()
		l.mu.Lock()
		if err != nil && l.mu.err == nil {
			l.mu.err = fmt.Errorf("wal: %w", err)
		}
	}
	l.closeSegment()
	l.mu.stopped = true
	l.mu.cond.Broadcast()
	l.lock.Close()
	return l.mu.err
}
