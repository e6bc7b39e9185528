package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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
// crash loses at most about the last d of acknowledged writes.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy{every: d} }

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	FS          FS         // default OSFS
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
		c.FS = OSFS{}
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
}

// Replay receives what Open reads back, in order: the newest snapshot,
// if there is one, then every transaction after it. A nil func skips its
// part.
type Replay struct {
	Snapshot func(rev int64) error // called first: the snapshot's revision
	Item     func(*Item) error     // then each of its items, in key order
	// History receives, before Tx, the transactions that the snapshot
	// already holds but that the log still keeps (see Log.Retain), in
	// order and without gaps: the history of changes, not state to apply.
	History func(*Tx) error
	Tx      func(*Tx) error // then each later transaction, in order
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
	opts Options
	dir  string
	lock io.Closer

	mu       sync.Mutex // guards the fields below
	cond     *sync.Cond // broadcast when durable, err or busy change, or on close
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
	segments []segment    // the segment files, ascending
	snapRev  int64        // revision of the newest snapshot
	retain   int64        // a snapshot removes no segment with records after this; see Retain
	written  atomic.Int64 // bytes appended to segments since Open

	snapMu sync.Mutex // one snapshot at a time

	// The leader's own (whoever set busy).
	seg         File
	segSize     int64
	lastGroup   int           // records in the last group
	lastSync    time.Duration // how long its sync took
	gatherTimer *time.Timer

	kick chan struct{} // Append wakes a gathering leader; capacity 1
	stop chan struct{} // closed by Close to stop the interval sync
	done chan struct{} // closed when the interval sync has stopped
}

// The files of a log, under its directory:
//
//	LOCK                   held while the log is open
//	wal/<first-rev>.log    segments
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
	l := &Log{opts: opts.withDefaults(), dir: dir, retain: math.MaxInt64, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	fsys := l.opts.FS
	for _, d := range []string{dir, l.segDir(), l.snapDir()} {
		if err := fsys.MkdirAll(d); err != nil {
			return nil, err
		}
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
	l.durable = l.last
	l.stats = Stats{Bytes: l.stats.Bytes, SnapshotRevision: l.snapRev}
	l.gatherTimer = time.NewTimer(time.Hour)
	l.gatherTimer.Stop()
	if l.opts.Sync.every > 0 {
		go l.syncLoop(l.opts.Sync.every)
	} else {
		close(l.done)
	}
	return l, nil
}

func (l *Log) segDir() string  { return path.Join(l.dir, "wal") }
func (l *Log) snapDir() string { return path.Join(l.dir, "snap") }

// recover loads the newest snapshot and replays the segments after it;
// see Open.
func (l *Log) recover(r Replay) error {
	if err := l.loadSnapshot(r); err != nil {
		return err
	}
	if r.Tx == nil {
		r.Tx = func(*Tx) error { return nil }
	}
	return l.replay(r.History, r.Tx)
}

// loadSnapshot finds the newest snapshot, removes older ones and
// unfinished ones, and reads it into r.
func (l *Log) loadSnapshot(r Replay) error {
	fsys := l.opts.FS
	dir := l.snapDir()
	names, err := fsys.List(dir)
	if err != nil {
		return err
	}
	var revs []int64
	var stale []string
	for _, name := range names {
		if strings.HasSuffix(name, ".snap.tmp") {
			stale = append(stale, name) // a snapshot cut short by a crash
			continue
		}
		rev, err := strconv.ParseInt(strings.TrimSuffix(name, ".snap"), 10, 64)
		if !strings.HasSuffix(name, ".snap") || err != nil || rev < 1 {
			return fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, dir)
		}
		revs = append(revs, rev)
	}
	if len(revs) > 0 {
		newest := revs[len(revs)-1]
		for _, rev := range revs[:len(revs)-1] {
			stale = append(stale, snapshotName(rev)) // replaced by newest, not yet removed
		}
		name := path.Join(dir, snapshotName(newest))
		b, err := fsys.ReadFile(name)
		if err != nil {
			return err
		}
		if r.Item == nil {
			r.Item = func(*Item) error { return nil }
		}
		if r.Snapshot != nil {
			if err := r.Snapshot(newest); err != nil {
				return err
			}
		}
		rev, err := ReadSnapshot(b, l.opts.MaxRecord, r.Item)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if rev != newest {
			return fmt.Errorf("%w: %s holds revision %d", ErrCorrupt, name, rev)
		}
		l.snapRev, l.last = rev, rev
	}
	if len(stale) == 0 {
		return nil
	}
	for _, name := range stale {
		l.opts.Logf("wal: removing %s", path.Join(dir, name))
		if err := fsys.Remove(path.Join(dir, name)); err != nil {
			return err
		}
	}
	return fsys.SyncDir(dir)
}

// replay reads the segments in order, passing hist the transactions the
// snapshot holds and fn those after it; see Open.
func (l *Log) replay(hist, fn func(*Tx) error) error {
	fsys := l.opts.FS
	names, err := fsys.List(l.segDir())
	if err != nil {
		return err
	}
	for _, name := range names {
		first, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if !strings.HasSuffix(name, ".log") || err != nil || first < 1 {
			return fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, l.segDir())
		}
		l.segments = append(l.segments, segment{first: first})
	}
	// Segments whose records the snapshot holds all of, kept for the
	// history (or left over from a crash before they were removed), are
	// checked first: the history they hold must be whole, so damage in
	// one drops it and every older one. The state is not at stake.
	n, damage, err := l.historyDamage()
	if err != nil {
		return err
	}
	if n > 0 {
		l.opts.Logf("wal: %v: removing the %d oldest segments, which hold only history", damage, n)
		if err := l.removeSegments(n); err != nil {
			return err
		}
	}
	var histLast int64
	history := func(tx *Tx) error {
		// historyDamage vetted the segments of history alone; this is the
		// one the snapshot ends in, which holds state too.
		if histLast != 0 && tx.Revision != histLast+1 {
			return fmt.Errorf("%w: revision %d after %d", ErrCorrupt, tx.Revision, histLast)
		}
		histLast = tx.Revision
		if hist == nil {
			return nil
		}
		return hist(tx)
	}
	for i, seg := range l.segments {
		name := path.Join(l.segDir(), segmentName(seg.first))
		lastSeg := i == len(l.segments)-1
		b, res, bad, err := l.readSegment(name, lastSeg, history, func(tx *Tx) error {
			if tx.Revision <= l.last {
				return fmt.Errorf("%w: revision %d after %d", ErrCorrupt, tx.Revision, l.last)
			}
			l.last = tx.Revision
			l.stats.Records++
			return fn(tx)
		})
		if err != nil {
			return err
		}
		if lastSeg && (len(b) < SegmentHeaderSize || res.Records == 0 && bad == nil) {
			// A crash while the segment was started: its header never
			// became durable, or no record did. Remove it, so that the
			// next append can start it again.
			l.opts.Logf("wal: %s: removing a segment with no records", name)
			return l.dropFrom(i)
		}
		if bad != nil && !l.opts.Repair {
			return bad
		}
		if bad != nil || res.Torn {
			what := "torn tail"
			if bad != nil {
				what = "damage (repair)"
			}
			l.opts.Logf("wal: %s: %s at offset %d: truncating %d bytes", name, what, res.Good, int64(len(b))-res.Good)
			if err := l.truncate(name, res.Good); err != nil {
				return err
			}
			b = b[:res.Good]
		}
		l.segments[i].size = int64(len(b))
		l.stats.Bytes += int64(len(b))
		if bad != nil && !lastSeg {
			return l.dropFrom(i + 1)
		}
	}
	return nil
}

// historyDamage reads the segments whose records the snapshot holds all
// of, which are kept only for the history of changes, and finds the newest
// damage among them: a bad record, or a gap, inside one or between one
// and the next. It returns how many segments, oldest first, must go for
// the history that is left to be whole (0: none), and the damage. Only
// the history is at stake there, never the state: Open drops them and
// says so (Logf), and Check reports it.
func (l *Log) historyDamage() (n int, damage, err error) {
	covered := 0
	for covered+1 < len(l.segments) && l.segments[covered+1].first <= l.snapRev+1 {
		covered++
	}
	for i := 0; i < covered; i++ {
		name := path.Join(l.segDir(), segmentName(l.segments[i].first))
		next := l.segments[i].first // the revision its next record must have
		inOrder := func(tx *Tx) error {
			if tx.Revision != next {
				return fmt.Errorf("%w: revision %d where %d was due", ErrCorrupt, tx.Revision, next)
			}
			next++
			return nil
		}
		_, _, bad, err := l.readSegment(name, false, inOrder, inOrder)
		if err != nil && errors.Is(err, ErrCorrupt) {
			bad, err = fmt.Errorf("%s: %w", name, err), nil
		}
		if err != nil {
			return 0, nil, err
		}
		if bad == nil && next != l.segments[i+1].first {
			bad = fmt.Errorf("%w: %s ends at revision %d, and the next segment starts at %d", ErrCorrupt, name, next-1, l.segments[i+1].first)
		}
		if bad != nil {
			n, damage = i+1, bad
		}
	}
	return n, damage, nil
}

// readSegment reads the segment file name and calls hist with each of its
// transactions that the snapshot holds (nil: skip them unread), fn with
// each after it. A last segment too short for its header is returned as
// it is, unread. bad is damage that is not a torn tail of the last segment
// (it wraps ErrCorrupt and names the file); err is what stopped the read
// otherwise: an I/O error, a bad header, hist's or fn's error.
func (l *Log) readSegment(name string, last bool, hist, fn func(*Tx) error) (b []byte, res ScanResult, bad, err error) {
	b, err = l.opts.FS.ReadFile(name)
	if err != nil || len(b) < SegmentHeaderSize && last {
		return b, res, nil, err
	}
	_, version, err := DecodeSegmentHeader(b)
	if err != nil {
		return b, res, nil, fmt.Errorf("%s: %w", name, err)
	}
	res, err = Scan(b[SegmentHeaderSize:], SegmentHeaderSize, version, l.opts.MaxRecord, func(_ byte, payload []byte) error {
		held := false
		if rev, n := binary.Uvarint(payload); n > 0 && rev <= uint64(l.snapRev) {
			if hist == nil {
				return nil // in the snapshot
			}
			held = true
		}
		tx, err := DecodeTx(payload, version)
		if err != nil {
			return err
		}
		if held {
			return hist(&tx)
		}
		return fn(&tx)
	})
	switch {
	case errors.Is(err, ErrCorrupt):
		return b, res, fmt.Errorf("%s: %w", name, err), nil
	case err != nil:
		return b, res, nil, err
	case res.Torn && !last:
		return b, res, fmt.Errorf("%s: %w: torn record at offset %d with later segments after it", name, ErrCorrupt, res.Good), nil
	}
	return b, res, nil, nil
}

func (l *Log) truncate(name string, size int64) error {
	f, err := l.opts.FS.OpenAppend(name)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeSegments removes the first n segments, oldest first, so that a
// crash leaves a suffix of the log.
func (l *Log) removeSegments(n int) error {
	if n == 0 {
		return nil
	}
	l.mu.Lock()
	gone := slices.Clone(l.segments[:n])
	l.mu.Unlock()
	for _, seg := range gone {
		if err := l.opts.FS.Remove(path.Join(l.segDir(), segmentName(seg.first))); err != nil {
			return err
		}
		l.mu.Lock()
		l.segments = l.segments[1:]
		l.stats.Bytes -= seg.size
		l.mu.Unlock()
	}
	return l.opts.FS.SyncDir(l.segDir())
}

// dropFrom removes the segments from index i on.
func (l *Log) dropFrom(i int) error {
	for _, seg := range l.segments[i:] {
		if err := l.opts.FS.Remove(path.Join(l.segDir(), segmentName(seg.first))); err != nil {
			return err
		}
	}
	l.segments = l.segments[:i]
	return l.opts.FS.SyncDir(l.segDir())
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: log closed")

// ErrTooLarge is returned by Append for a transaction whose record would be
// over Options.MaxRecord. Nothing is written and the log stays usable.
var ErrTooLarge = errors.New("wal: record too large")

// Append queues tx to be written. Revisions must increase. It does not
// wait or write: WaitDurable does. An earlier write or sync failure is returned
// here (sticky) until the log is reopened.
func (l *Log) Append(tx *Tx) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.closing {
		return ErrClosed
	}
	if tx.Revision <= l.last {
		return fmt.Errorf("wal: revision %d appended after %d", tx.Revision, l.last)
	}
	start := len(l.pending)
	l.pending = AppendRecord(l.pending, TypeTx, nil)
	l.pending = AppendTx(l.pending, tx)
	if n := len(l.pending) - start - RecordHeaderSize; n > l.opts.MaxRecord {
		// Recovery would take a record over the limit for damage, so
		// none is written; the log is as it was.
		l.pending = l.pending[:start]
		return fmt.Errorf("%w: a record of %d bytes, limit %d", ErrTooLarge, n, l.opts.MaxRecord)
	}
	l.pending = reframe(l.pending, start)
	l.waiting++
	l.last = tx.Revision
	l.stats.Records++
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// reframe fixes the header of the record at b[start:] after its payload
// was appended in place behind an empty frame.
func reframe(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-RecordHeaderSize))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// WaitDurable waits until every record up to rev is durable under the
// sync policy, or returns the error that stopped it. If no group is being
// written, the caller writes (and syncs) everything waiting itself, as the
// group's leader; otherwise it waits for the leader, and leads the next
// group if its record is still waiting then. So a lone writer syncs its
// own records with no hand-off to another goroutine, and many writers
// share each fsync.
func (l *Log) WaitDurable(rev int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.durable < rev {
		switch {
		case l.err != nil:
			return l.err
		case l.stopped:
			return ErrClosed
		case !l.busy && len(l.pending) > 0:
			l.lead()
		default:
			l.cond.Wait()
		}
	}
	return nil
}

// lead writes everything waiting as one group and, under SyncAlways,
// syncs once for all of it. l.mu is held, and held again on return; the
// file work happens without it, while l.busy keeps every other leader out.
func (l *Log) lead() {
	l.busy = true
	if target := l.waiting + l.lastGroup*3/4; l.waiting < target && l.opts.Sync == SyncAlways && !l.closing {
		// The last sync released the writers of its group, who are
		// likely to write again at once. Give them a moment to append,
		// so that this sync serves them with those who wrote during the
		// last one. Otherwise groups settle into two halves, each
		// synced alone.
		l.mu.Unlock()
		l.gather(target, l.lastSync/2)
		l.mu.Lock()
	}
	group, last := l.pending, l.last
	l.lastGroup = l.waiting
	l.pending, l.spare, l.waiting = l.spare[:0], nil, 0
	failed := l.err != nil
	l.mu.Unlock()

	var err error
	dirty := false
	if !failed {
		err = l.write(group)
		if err == nil && l.opts.Sync == SyncAlways {
			began := time.Now()
			err = l.sync()
			l.lastSync = time.Since(began)
		} else if err == nil {
			dirty = true
		}
	}

	l.mu.Lock()
	l.spare = group[:0]
	l.stats.Groups++
	l.dirty = l.dirty || dirty
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("wal: %w (the log refuses writes until reopened)", err)
	}
	if l.err == nil {
		l.durable = last
	}
	l.busy = false
	l.cond.Broadcast()
}

// syncLoop fsyncs what was written, every interval, under SyncInterval.
func (l *Log) syncLoop(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		for l.busy {
			l.cond.Wait()
		}
		if !l.dirty || l.err != nil || l.stopped {
			l.mu.Unlock()
			continue
		}
		l.busy, l.dirty = true, false
		l.mu.Unlock()
		err := l.sync()
		l.mu.Lock()
		if err != nil && l.err == nil {
			l.err = fmt.Errorf("wal: %w (the log refuses writes until reopened)", err)
		}
		l.busy = false
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// gather waits until at least n records are waiting, for at most d.
func (l *Log) gather(n int, d time.Duration) {
	l.gatherTimer.Reset(min(d, maxGather))
	defer l.gatherTimer.Stop()
	for {
		l.mu.Lock()
		enough := l.waiting >= n || l.closing
		l.mu.Unlock()
		if enough {
			return
		}
		select {
		case <-l.kick:
		case <-l.gatherTimer.C:
			return
		}
	}
}

// maxGather bounds how long a leader waits for its group to fill.
const maxGather = time.Millisecond

// Err returns the log's sticky error, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Log) sync() error {
	if err := l.seg.Sync(); err != nil {
		return err
	}
	l.mu.Lock()
	l.stats.Syncs++
	l.mu.Unlock()
	return nil
}

// write appends a group to the current segment, starting a new segment
// first if there is none or the current one is full; the new segment is
// named by the revision of the group's first record.
func (l *Log) write(group []byte) error {
	if l.seg == nil || l.segSize >= l.opts.SegmentSize {
		_, payload, _, err := DecodeRecord(group, l.opts.MaxRecord)
		if err != nil {
			return err
		}
		tx, err := DecodeTx(payload, SegmentVersion)
		if err != nil {
			return err
		}
		if err := l.rotate(tx.Revision); err != nil {
			return err
		}
	}
	n, err := l.seg.Write(group)
	l.segSize += int64(n)
	l.mu.Lock()
	l.segments[len(l.segments)-1].size += int64(n)
	l.stats.Bytes += int64(n)
	l.written.Add(int64(n))
	l.mu.Unlock()
	return err
}

// rotate syncs and closes the current segment and starts one whose first
// record has revision first: header written and synced, directory synced.
func (l *Log) rotate(first int64) error {
	if l.seg != nil {
		if err := l.sync(); err != nil {
			return err
		}
		l.closeSegment()
	}
	name := path.Join(l.segDir(), segmentName(first))
	f, err := l.opts.FS.Create(name)
	if err != nil {
		return err
	}
	l.seg, l.segSize = f, 0
	hdr := AppendSegmentHeader(nil, first)
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	l.segSize = int64(len(hdr))
	if err := l.sync(); err != nil {
		return err
	}
	if err := l.opts.FS.SyncDir(l.segDir()); err != nil {
		return err
	}
	l.mu.Lock()
	l.segments = append(l.segments, segment{first: first, size: int64(len(hdr))})
	l.stats.Bytes += int64(len(hdr))
	l.mu.Unlock()
	return nil
}

func (l *Log) closeSegment() {
	if l.seg != nil {
		l.seg.Close()
		l.seg = nil
	}
}

// Written returns how many bytes have been appended to segments since
// Open; a caller compares it over time to decide when to snapshot.
func (l *Log) Written() int64 { return l.written.Load() }

// Snapshot writes a snapshot of the state at revision rev, whose items
// items yields in key order, then removes the snapshot and the segments it
// replaces, but none that Retain asks to keep. rev must be durable; appends go on meanwhile. The snapshot is
// written to a temporary file, synced, renamed and its directory synced
// before anything is removed, so a crash at any point leaves either the
// old snapshot and its segments or the new one. A failure is returned and
// leaves the log usable; a snapshot at or below the newest one does
// nothing.
func (l *Log) Snapshot(rev int64, items iter.Seq[*Item]) error {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	l.mu.Lock()
	closing, durable, old := l.closing, l.durable, l.snapRev
	l.mu.Unlock()
	switch {
	case closing:
		return ErrClosed
	case rev > durable:
		return fmt.Errorf("wal: snapshot at revision %d, beyond the durable %d", rev, durable)
	case rev <= old:
		return nil
	}
	fsys, dir := l.opts.FS, l.snapDir()
	name := path.Join(dir, snapshotName(rev))
	tmp := name + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("wal: snapshot: %w", err)
	}
	_, err = WriteSnapshot(f, rev, items)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err != nil {
		fsys.Remove(tmp) // best effort: Open removes what is left
		return fmt.Errorf("wal: snapshot: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: snapshot: %w", err)
	}
	l.mu.Lock()
	l.snapRev = rev
	l.stats.Snapshots++
	l.stats.SnapshotRevision = rev
	keep := min(rev, l.retain)
	covered := 0
	for covered+1 < len(l.segments) && l.segments[covered+1].first <= keep+1 {
		covered++
	}
	l.mu.Unlock()
	if old > 0 {
		if err := fsys.Remove(path.Join(dir, snapshotName(old))); err != nil {
			return fmt.Errorf("wal: removing the replaced snapshot: %w", err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("wal: snapshot: %w", err)
		}
	}
	if err := l.removeSegments(covered); err != nil {
		return fmt.Errorf("wal: removing segments the snapshot holds: %w", err)
	}
	return nil
}

// Retain asks every later Snapshot to keep the segments that hold records
// after rev, although the snapshot holds them too, so that a reopened log
// can hand them to Replay.History. By default a snapshot removes every
// segment it replaces.
func (l *Log) Retain(rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retain = rev
}

// Stats returns counters of the log's work.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Segments = len(l.segments)
	return s
}

// Close writes and syncs what is waiting, closes the segment and releases
// the lock. It returns the log's sticky error, if any.
func (l *Log) Close() error {
	l.snapMu.Lock() // a snapshot under way finishes first
	defer l.snapMu.Unlock()
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done

	l.mu.Lock()
	defer l.mu.Unlock()
	for l.busy {
		l.cond.Wait()
	}
	if len(l.pending) > 0 {
		l.lead() // appended, but nobody waited for them yet
	}
	if l.seg != nil && l.err == nil && l.dirty {
		l.mu.Unlock()
		err := l.sync()
		l.mu.Lock()
		if err != nil && l.err == nil {
			l.err = fmt.Errorf("wal: %w", err)
		}
	}
	l.closeSegment()
	l.stopped = true
	l.cond.Broadcast()
	l.lock.Close()
	return l.err
}

// Report is what Check found in a log's directory.
type Report struct {
	SnapshotRevision int64 // 0: no snapshot
	SnapshotItems    int64
	Segments         int
	Records          int64 // transaction records after the snapshot
	LastRevision     int64 // newest revision the log holds
	TornBytes        int64 // bytes of a torn tail that Open would truncate
	// HistoryDamage is damage in the segments kept only for the history
	// of changes (the snapshot holds all of their records), "" if none:
	// Open removes the HistorySegmentsLost oldest segments, up to and
	// including the damaged one, and the history starts after them.
	HistoryDamage       string
	HistorySegmentsLost int
}

// Check reads the snapshot and the segments in dir without changing
// anything and reports what it found. Damage that Open would refuse, a
// damaged last record included, is returned as an error that
// errors.Is(err, ErrCorrupt) recognises and that names the segment and
// the offset; a torn tail, which Open truncates, and damage in segments
// kept only for the history, which Open drops, are only reported. The
// directory must not be open: Check takes its lock.
func Check(dir string, opts *Options) (Report, error) {
	l := &Log{opts: opts.withDefaults(), dir: dir}
	fsys := l.opts.FS
	lock, err := fsys.Lock(path.Join(dir, "LOCK"))
	if err != nil {
		return Report{}, err
	}
	defer lock.Close()
	var rep Report
	names, err := fsys.List(l.snapDir())
	if err != nil {
		return rep, err
	}
	for _, name := range names {
		if strings.HasSuffix(name, ".snap") {
			b, err := fsys.ReadFile(path.Join(l.snapDir(), name))
			if err != nil {
				return rep, err
			}
			rep.SnapshotItems = 0
			rev, err := ReadSnapshot(b, l.opts.MaxRecord, func(*Item) error { rep.SnapshotItems++; return nil })
			if err != nil {
				return rep, fmt.Errorf("%s: %w", path.Join(l.snapDir(), name), err)
			}
			rep.SnapshotRevision = rev // names sort by revision: the last is the newest
		}
	}
	rep.LastRevision = rep.SnapshotRevision
	l.snapRev = rep.SnapshotRevision
	names, err = fsys.List(l.segDir())
	if err != nil {
		return rep, err
	}
	for _, name := range names {
		first, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if !strings.HasSuffix(name, ".log") || err != nil || first < 1 {
			return rep, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, l.segDir())
		}
		l.segments = append(l.segments, segment{first: first})
	}
	n, damage, err := l.historyDamage()
	if err != nil {
		return rep, err
	}
	if n > 0 {
		rep.HistoryDamage, rep.HistorySegmentsLost = damage.Error(), n
		names = names[n:]
	}
	for i, name := range names {
		last := i == len(names)-1
		b, res, bad, err := l.readSegment(path.Join(l.segDir(), name), last, nil, func(tx *Tx) error {
			if rep.LastRevision != 0 && tx.Revision != rep.LastRevision+1 {
				return fmt.Errorf("%w: revision %d after %d", ErrCorrupt, tx.Revision, rep.LastRevision)
			}
			rep.LastRevision = tx.Revision
			rep.Records++
			return nil
		})
		rep.Segments++
		switch {
		case err != nil:
			return rep, err
		case bad != nil:
			return rep, bad
		case len(b) < SegmentHeaderSize:
			rep.TornBytes += int64(len(b))
		case res.Torn:
			rep.TornBytes += int64(len(b)) - res.Good
		}
	}
	return rep, nil
}
