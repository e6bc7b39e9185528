package wal

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/livekv/livekv/internal/ring"
	"github.com/livekv/livekv/vfs"
)

// recover loads the newest snapshot and replays the segments after it;
// see Open. The segments kept only for the history are checked
// (historyDamage) on another goroutine while the snapshot loads: which
// they are, and what they must hold, depends only on the snapshot's
// revision, which its name gives.
func (l *Log) recover(r Replay) error {
	revs, stale, err := l.snapshots()
	if err != nil {
		return err
	}
	segs, listErr := l.listSegments()
	keep := r.HistoryEvents
	if r.History == nil {
		keep = 0 // no history to cut: count nothing
	}
	var hd historyCheck
	done := make(chan struct{})
	if listErr == nil && len(revs) > 0 {
		l.mu.segments = segs
		go func() {
			defer close(done)
			hd = l.historyDamage(revs[len(revs)-1], keep)
		}()
	} else {
		close(done)
	}
	err = l.loadSnapshot(r, revs, stale)
	<-done // whatever loadSnapshot returned: no goroutine is left behind
	if err != nil {
		return err
	}
	if listErr != nil {
		return listErr
	}
	if len(revs) == 0 {
		l.mu.segments = segs
		hd = l.historyDamage(0, keep)
	}
	if r.Tx == nil {
		r.Tx = func(*Tx) error { return nil }
	}
	if err := l.replay(r.History, r.Tx, r.Borrow, hd); err != nil {
		return err
	}
	return l.removeMarks()
}

// historyCheck is what historyDamage found: how many segments must go,
// and why; the segments it checked; the newest revision the history
// drops (historyCut), which may be in a segment it checked or in a later
// one, and where the record after it starts in its segment (used when
// that is one it checked); and an error that stopped the check.
type historyCheck struct {
	n       int
	damage  error
	checked []checkedSegment
	cut     int64 // 0: none
	cutOff  int64
	err     error
}

// checkedSegment is a segment of history alone as the check found it.
type checkedSegment struct {
	size    int64
	version byte // its format
}

// snapshots lists the snapshot folder: the revisions of the snapshots in
// it, oldest first, and the files to remove once the newest is read.
func (l *Log) snapshots() (revs []int64, stale []string, err error) {
	dir := l.snapDir()
	names, err := l.opts.FS.List(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		if name == restoreTmp {
			return nil, nil, fmt.Errorf("%w: %s holds %s, which a restore left that did not finish: restore again (into this folder, or a new one)", ErrUnfinishedRestore, dir, name)
		}
		if strings.HasSuffix(name, ".snap.tmp") {
			stale = append(stale, name) // a snapshot cut short by a crash
			continue
		}
		rev, err := strconv.ParseInt(strings.TrimSuffix(name, ".snap"), 10, 64)
		if !strings.HasSuffix(name, ".snap") || err != nil || rev < 1 {
			return nil, nil, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, dir)
		}
		revs = append(revs, rev)
	}
	return revs, stale, nil
}

// listSegments lists the segment folder, and puts the sync marks in it
// (see truncate) in l.marks.
func (l *Log) listSegments() ([]segment, error) {
	names, err := l.opts.FS.List(l.segDir())
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, name := range names {
		if strings.HasSuffix(name, ".log"+syncMark) {
			l.marks = append(l.marks, name)
			continue
		}
		first, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if !strings.HasSuffix(name, ".log") || err != nil || first < 1 {
			return nil, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, l.segDir())
		}
		segs = append(segs, segment{first: first})
	}
	return segs, nil
}

// loadSnapshot reads the newest of the snapshots revs into r, and removes
// the older ones and the stale files (see snapshots).
func (l *Log) loadSnapshot(r Replay, revs []int64, stale []string) error {
	fsys := l.opts.FS
	dir := l.snapDir()
	if len(revs) > 0 {
		newest := revs[len(revs)-1]
		for _, rev := range revs[:len(revs)-1] {
			stale = append(stale, snapshotName(rev)) // replaced by newest, not yet removed
		}
		name := path.Join(dir, snapshotName(newest))
		f, err := vfs.OpenRead(fsys, name)
		if err != nil {
			return err
		}
		defer f.Close()
		if r.Item == nil {
			r.Item = func(*Item) error { return nil }
		}
		if r.Snapshot != nil {
			if err := r.Snapshot(newest); err != nil {
				return err
			}
		}
		if n, ok := readSnapshotCount(f, l.opts.MaxRecord); ok && r.Items != nil {
			r.Items(n)
		}
		rev, err := readSnapshot(f, l.opts.MaxRecord, r.Item, r.Borrow)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if rev != newest {
			return fmt.Errorf("%w: %s holds revision %d", ErrCorrupt, name, rev)
		}
		l.mu.snapRev, l.mu.last = rev, rev
	}
	if len(revs) == 0 && len(stale) == 0 {
		return nil
	}
	// The folder is synced even with nothing to remove: a process killed
	// after the snapshot's rename, before that sync, leaves its name in
	// the OS alone, and Open goes on to act on it (it drops damaged
	// segments of history that the snapshot holds).
	for _, name := range stale {
		l.opts.Logf("wal: removing %s", path.Join(dir, name))
		if err := fsys.Remove(path.Join(dir, name)); err != nil {
			return err
		}
	}
	return fsys.SyncDir(dir)
}

// replay reads the segments in order, passing hist the transactions the
// snapshot holds and fn those after it; see Open. hist is not given those
// that the history drops anyway (hd.cut; Replay.HistoryEvents), in the
// segments of history alone or in the one the snapshot ends in.
func (l *Log) replay(hist, fn func(*Tx) error, borrow bool, hd historyCheck) error {
	// Segments whose records the snapshot holds all of, kept for the
	// history (or left over from a crash before they were removed), were
	// checked first: the history they hold must be whole, so damage in
	// one drops it and every older one. The state is not at stake. Of
	// those that are left, only the records the history keeps are read
	// again (readHistory).
	n, checked, skip := hd.n, hd.checked, hd.cut
	if hd.err != nil {
		return hd.err
	}
	if n > 0 {
		l.opts.Logf("wal: %v: removing the %d oldest segments, which hold only history", hd.damage, n)
		if err := l.removeSegments(n); err != nil {
			return err
		}
		checked = checked[n:]
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
	for i, seg := range l.mu.segments {
		name := path.Join(l.segDir(), segmentName(seg.first))
		if i < len(checked) {
			c := checked[i]
			// The check found the records from seg.first to the next
			// segment's first, less one, and read the offset of skip+1.
			if last := l.mu.segments[i+1].first - 1; hist != nil && last > skip {
				from := int64(segmentHeaderSize)
				if seg.first <= skip {
					from = hd.cutOff
				}
				records := last - max(skip, seg.first-1)
				if err := l.readHistory(name, c, from, records, borrow, history); err != nil {
					return err
				}
			}
			l.mu.segments[i].size = c.size
			l.mu.stats.Bytes += c.size
			continue
		}
		lastSeg := i == len(l.mu.segments)-1
		size, res, bad, err := l.readSegmentFrom(name, lastSeg, skip, borrow, history, func(tx *Tx) error {
			if tx.Revision <= l.mu.last {
				return fmt.Errorf("%w: revision %d after %d", ErrCorrupt, tx.Revision, l.mu.last)
			}
			if tx.Revision != l.mu.last+1 {
				// Append takes the next revision only: records are
				// missing here (a segment removed, say).
				return fmt.Errorf("%w: a gap: revision %d after %d", ErrCorrupt, tx.Revision, l.mu.last)
			}
			l.mu.last = tx.Revision
			l.mu.stats.Records++
			return fn(tx)
		})
		if err != nil {
			return err
		}
		if lastSeg && (size < segmentHeaderSize || res.Records == 0 && bad == nil) {
			// A crash while the segment was started: its header never
			// became durable, or no record did. Remove it, so that the
			// next append can start it again.
			l.opts.Logf("wal: %s: removing a segment with no records", name)
			return l.dropFrom(i)
		}
		if bad != nil && !l.opts.Repair {
			return bad
		}
		if bad != nil && res.Records == 0 {
			// Repair keeps no record of it: a segment of its header alone
			// would hold the name the next append starts its segment by.
			l.opts.Logf("wal: %s: damage (repair) at offset %d: removing it and every later segment", name, res.Good)
			return l.dropFrom(i)
		}
		if bad != nil || res.Torn {
			what := "torn tail"
			if bad != nil {
				what = "damage (repair)"
			}
			if bad != nil && !lastSeg {
				// The later segments go first, their removal durable,
				// so that a crash before the truncation leaves the
				// damage to repair again, never this segment cut short
				// with later ones after it: a gap.
				if err := l.dropFrom(i + 1); err != nil {
					return err
				}
			}
			l.opts.Logf("wal: %s: %s at offset %d: truncating %d bytes", name, what, res.Good, size-res.Good)
			if err := l.truncate(name, res.Good); err != nil {
				return err
			}
			size = res.Good
		} else if lastSeg {
			// A process killed before its sync leaves records in the OS
			// alone. They were replayed, and records go on after them:
			// a machine crash must not take them back now. (truncate to
			// its own length only syncs it.)
			if err := l.truncate(name, size); err != nil {
				return err
			}
		}
		l.mu.segments[i].size = size
		l.mu.stats.Bytes += size
		if bad != nil {
			return nil // the later segments are gone (dropFrom)
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
// says so (Logf), and Check reports it. snapRev is the snapshot's
// revision. It checks the records without
// keeping their keys and values, and finds, among those of the segments
// that stay and of the later ones (countLater), what a history keeping
// keep events drops (historyCut).
func (l *Log) historyDamage(snapRev int64, keep int) (hc historyCheck) {
	covered := 0
	for covered+1 < len(l.mu.segments) && l.mu.segments[covered+1].first <= snapRev+1 {
		covered++
	}
	hc.checked = make([]checkedSegment, covered)
	cut := historyCut{keep: keep}
	for i := 0; i < covered; i++ {
		name := path.Join(l.segDir(), segmentName(l.mu.segments[i].first))
		next := l.mu.segments[i].first // the revision its next record must have
		size, version, err := l.countRecords(name, &next, &cut, 0)
		var bad error
		var over *RecordOverLimitError
		switch {
		case errors.Is(err, ErrCorrupt):
			bad, err = fmt.Errorf("%s: %w", name, err), nil
		case errors.As(err, &over):
			return historyCheck{err: fmt.Errorf("%s: %w", name, err)}
		case err != nil:
			return historyCheck{err: err}
		}
		if bad == nil && next != l.mu.segments[i+1].first {
			bad = fmt.Errorf("%w: %s ends at revision %d, and the next segment starts at %d", ErrCorrupt, name, next-1, l.mu.segments[i+1].first)
		}
		if bad != nil {
			hc.n, hc.damage = i+1, bad
			cut.reset() // its records, and those before, go with it
		}
		hc.checked[i] = checkedSegment{size, version}
	}
	if keep > 0 && len(l.mu.segments) > 0 && l.mu.segments[0].first <= snapRev {
		// The records of the segment the snapshot ends in, and of those
		// after it, go to the history too, as history or as writes
		// replayed, and push out what came before them: counted, they
		// move the cut on.
		l.countLater(covered, snapRev, &cut)
	}
	hc.cut, hc.cutOff = cut.cut, cut.offAfter()
	return hc
}

// countLater adds to cut the records of the segments from the i-th on
// (there is one), in order, reading them in pieces. It stops at the first
// damage, gap or read error: the replay stops at damage, and the engine's
// fails at a gap or at that error, and a record counted that is never
// replayed would push the cut too far, where one left uncounted only
// leaves it earlier. It also stops once the cut reaches snapRev: the
// history keeps none of the records the snapshot holds, and the count
// has nothing more to skip (errCounted ends checkSegment's loop).
func (l *Log) countLater(i int, snapRev int64, cut *historyCut) {
	next := l.mu.segments[i].first
	for ; i < len(l.mu.segments) && l.mu.segments[i].first == next; i++ {
		name := path.Join(l.segDir(), segmentName(next))
		if _, _, err := l.countRecords(name, &next, cut, snapRev); err != nil {
			return
		}
	}
}

// countRecords checks the records of the segment file name (checkSegment),
// which must go on from revision *next, and adds each to cut, moving *next
// on; it stops with errCounted once the cut reaches stop (0: never).
func (l *Log) countRecords(name string, next *int64, cut *historyCut, stop int64) (size int64, version byte, err error) {
	return l.checkSegment(name, func(version byte, off int64, payload []byte) error {
		rev, writes, err := checkTx(payload, version)
		if err == nil && rev != *next {
			err = fmt.Errorf("%w: revision %d where %d was due", ErrCorrupt, rev, *next)
		}
		if err != nil {
			return err
		}
		*next++
		cut.add(txEvents{rev: rev, events: writes, off: off})
		if stop > 0 && cut.cut >= stop {
			return errCounted
		}
		return nil
	})
}

// errCounted stops countRecords once the cut has gone far enough.
var errCounted = errors.New("wal: counted enough")

// checkSegment reads the segment file name in pieces, never whole, and
// calls fn with the offset and payload of each of its records, and the
// segment's format version. It returns the file's length and the version.
// Damage, a record cut short included, is an error that wraps ErrCorrupt,
// as is one from fn that does; any other error is the file's or fn's.
func (l *Log) checkSegment(name string, fn func(version byte, off int64, payload []byte) error) (size int64, version byte, err error) {
	f, err := vfs.OpenRead(l.opts.FS, name)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	size = f.Size()
	if _, version, err = readSegmentHeader(f); err != nil {
		return size, 0, err
	}
	_, err = eachRecord(f, segmentHeaderSize, size, l.opts.MaxRecord, func(off int64, payload []byte) error {
		return fn(version, off, payload)
	})
	return size, version, err
}

// readSegmentHeader reads and checks the header of the segment file f, and
// returns its first revision and its format version. A file too short for
// a header, or a header damaged, is ErrCorrupt; a read that comes back
// short (readFullAt) is io.ErrUnexpectedEOF.
func readSegmentHeader(f vfs.Reader) (first int64, version byte, err error) {
	hdr := make([]byte, min(f.Size(), segmentHeaderSize))
	if err := readFullAt(f, hdr, 0); err != nil {
		return 0, 0, err
	}
	return decodeSegmentHeader(hdr)
}

// readHistory gives history the transactions of the segment of history
// alone name, which the check found intact (c), from the record at
// offset from on: records of them.
func (l *Log) readHistory(name string, c checkedSegment, from, records int64, borrow bool, history func(*Tx) error) error {
	f, err := vfs.OpenRead(l.opts.FS, name)
	if err != nil {
		return err
	}
	defer f.Close()
	var tx Tx
	n, err := eachRecord(f, from, c.size, l.opts.MaxRecord, func(_ int64, payload []byte) error {
		if err := readInto(&tx, payload, c.version, borrow); err != nil {
			return err
		}
		return history(&tx)
	})
	if err == nil && n != records {
		err = fmt.Errorf("%w: %d records from offset %d, where the check found %d", ErrCorrupt, n, from, records)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// txEvents is a transaction's revision and its number of writes: the
// events it adds to the history.
type txEvents struct {
	rev    int64
	events int
	off    int64 // where its record starts in its segment
}

// historyCut finds, as the records of the log come in, oldest first, in
// order and without gaps, the newest revision that a history keeping keep
// events drops once they are given to it: one with newer records after it
// holding more than keep events in all. Every record counted goes to the
// history (given to History, or replayed and published), so the cut is
// never too far. It holds only the records after the cut, about keep of
// them at most, in a ring. keep 0 keeps all: no cut.
type historyCut struct {
	keep   int
	after  ring.Ring[txEvents] // the records after cut, oldest first
	events int                 // of those records
	cut    int64
}

func (c *historyCut) add(e txEvents) {
	if c.keep <= 0 {
		return
	}
	if c.after.Cap() == 0 {
		// Room at first for keep and two (what it holds if each record
		// has an event, as records almost always do), or 65,538 if keep
		// is larger; the ring doubles when that is not enough. Made at
		// the first record, as an Open may count none.
		c.after.Reserve(min(c.keep, 1<<16) + 2)
	}
	c.after.Push(e)
	c.events += e.events
	// The oldest goes while the records from it on hold more than keep,
	// though never the newest.
	for c.after.Len() > 1 && c.events > c.keep {
		old := c.after.At(0)
		c.cut = old.rev
		c.events -= old.events
		c.after.Pop()
	}
}

// reset forgets the records added so far: damage drops them.
func (c *historyCut) reset() {
	c.after.Clear()
	c.events, c.cut = 0, 0
}

// offAfter returns where the record after the cut starts in its segment
// (0 if there is no cut).
func (c *historyCut) offAfter() int64 {
	if c.cut == 0 {
		return 0
	}
	return c.after.At(0).off
}

// readSegment reads the segment file name and calls hist with each of its
// transactions that the snapshot holds (nil: skip them unread), fn with
// each after it, and returns the file's length. A last segment no longer
// than a header is left unread. bad is damage that is not a torn tail of the last segment
// (it wraps ErrCorrupt and names the file); err is what stopped the read
// otherwise: an I/O error, a bad header, hist's or fn's error.
func (l *Log) readSegment(name string, last bool, hist, fn func(*Tx) error) (size int64, res scanResult, bad, err error) {
	return l.readSegmentFrom(name, last, 0, false, hist, fn)
}

// readSegmentFrom is readSegment, but skips unread the transactions at
// revisions up to skip rather than give them to hist. If borrow, hist
// and fn get one Tx used again, whose keys and values point into the
// reader's buffer (Replay.Borrow).
func (l *Log) readSegmentFrom(name string, last bool, skip int64, borrow bool, hist, fn func(*Tx) error) (size int64, res scanResult, bad, err error) {
	var tx Tx
	return l.scanSegment(name, last, func(version byte, payload []byte) error {
		held := false
		if rev := revisionOf(payload, math.MaxInt64); rev <= l.mu.snapRev { // one with none is decoded, and refused
			if hist == nil || rev <= skip {
				return nil // in the snapshot
			}
			held = true
		}
		if err := readInto(&tx, payload, version, borrow); err != nil {
			return err
		}
		if held {
			return hist(&tx)
		}
		return fn(&tx)
	})
}

// readInto decodes the transaction record payload, of a segment of the
// given format version, into tx: borrowed if borrow (Replay.Borrow), into
// a Tx of its own otherwise.
func readInto(tx *Tx, payload []byte, version byte, borrow bool) error {
	if borrow {
		return borrowTx(payload, version, tx)
	}
	var err error
	*tx, err = decodeTx(payload, version)
	return err
}

// scanSegment reads the segment file name, in pieces (scanFile), and calls
// fn with the payload of each of its records, valid only until fn returns,
// and the segment's format version; it returns the file's length, and the
// rest is as readSegment.
func (l *Log) scanSegment(name string, last bool, fn func(version byte, payload []byte) error) (size int64, res scanResult, bad, err error) {
	f, err := vfs.OpenRead(l.opts.FS, name)
	if err != nil {
		return 0, res, nil, err
	}
	defer f.Close()
	size = f.Size()
	if size <= segmentHeaderSize && last {
		// No record: a crash while its header was written, with its
		// entry in the folder durable first (another sync of the folder,
		// or a journal, may make it so), leaves its header cut short or
		// zero-filled. replay removes it, whatever its bytes.
		return size, res, nil, nil
	}
	first, version, err := readSegmentHeader(f)
	if err != nil {
		return size, res, nil, fmt.Errorf("%s: %w", name, err)
	}
	res, err = scanFile(f, segmentHeaderSize, version, l.opts.MaxRecord, first-1, func(payload []byte) error {
		return fn(version, payload)
	})
	var over *RecordOverLimitError
	switch {
	case errors.Is(err, ErrCorrupt):
		return size, res, fmt.Errorf("%s: %w", name, err), nil
	case errors.As(err, &over):
		return size, res, nil, fmt.Errorf("%s: %w", name, err)
	case err != nil:
		return size, res, nil, err
	case res.Torn && !last:
		return size, res, fmt.Errorf("%s: %w: torn record at offset %d with later segments after it", name, ErrCorrupt, res.Good), nil
	}
	return size, res, nil, nil
}

// syncMark ends the name of the mark that stands beside a segment while
// Open syncs it: see truncate.
const syncMark = ".sync"

// truncate cuts the segment file name to size and syncs it. A mark
// (name+syncMark) stands in the folder while it syncs, and stays if the
// sync fails: what the OS holds of the file is unknown then (Linux counts
// the pages it could not write as written, and serves them, and a later
// fsync reports success without writing them), so the next Open that
// finds the mark does not trust a sync of the file but writes it again
// (rewrite). The mark needs only be in the OS, where the pages in doubt
// are: after a machine crash the file is what the disk holds, and a mark
// that a crash keeps costs only a copy. The folder is synced after the
// mark is removed, so that a rewrite's rename is durable too.
func (l *Log) truncate(name string, size int64) error {
	fsys := l.opts.FS
	mark := name + syncMark
	if i := slices.Index(l.marks, path.Base(mark)); i >= 0 {
		l.marks = slices.Delete(l.marks, i, i+1)
		return l.rewrite(name, mark, size)
	}
	m, err := fsys.Create(mark)
	if err != nil {
		return err
	}
	if err := m.Close(); err != nil {
		return err
	}
	f, err := fsys.OpenAppend(name)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: syncing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Remove(mark); err != nil {
		return err
	}
	return fsys.SyncDir(l.segDir())
}

// rewrite writes the first size bytes of the segment file name to the
// file mark, which a sync of name that failed left (see truncate), syncs
// it and renames it to name, then syncs the folder: the pages of the new
// file are written by its own sync. mark is emptied, never removed, so
// that it stays until it takes name's place.
func (l *Log) rewrite(name, mark string, size int64) error {
	fsys := l.opts.FS
	l.opts.Logf("wal: %s: a sync of it failed before: writing it again", name)
	r, err := vfs.OpenRead(fsys, name)
	if err != nil {
		return err
	}
	f, err := fsys.OpenAppend(mark)
	if err != nil {
		r.Close()
		return err
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(r, 0, size))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(mark, name)
	}
	if err != nil {
		return fmt.Errorf("wal: writing %s again: %w", name, err)
	}
	return fsys.SyncDir(l.segDir())
}

// removeMarks removes the sync marks that Open found and did not act on,
// those of segments that it removed or left unsynced, and syncs the
// folder if there were any.
func (l *Log) removeMarks() error {
	if len(l.marks) == 0 {
		return nil
	}
	for _, name := range l.marks {
		if err := l.opts.FS.Remove(path.Join(l.segDir(), name)); err != nil {
			return err
		}
	}
	l.marks = nil
	return l.opts.FS.SyncDir(l.segDir())
}

// removeSegments removes the first n segments, oldest first, so that a
// crash leaves a suffix of the log.
func (l *Log) removeSegments(n int) error {
	if n == 0 {
		return nil
	}
	l.mu.Lock()
	gone := slices.Clone(l.mu.segments[:n])
	l.mu.Unlock()
	for _, seg := range gone {
		if err := l.opts.FS.Remove(path.Join(l.segDir(), segmentName(seg.first))); err != nil {
			return err
		}
		l.mu.Lock()
		l.mu.segments = l.mu.segments[1:]
		l.mu.stats.Bytes -= seg.size
		l.mu.Unlock()
	}
	return l.opts.FS.SyncDir(l.segDir())
}

// dropFrom removes the segments from index i on, newest first, so that a
// crash, which may keep some of the removes made before the directory's
// sync (in order), leaves a prefix of the log, never a gap.
func (l *Log) dropFrom(i int) error {
	for j := len(l.mu.segments) - 1; j >= i; j-- {
		if err := l.opts.FS.Remove(path.Join(l.segDir(), segmentName(l.mu.segments[j].first))); err != nil {
			return err
		}
	}
	l.mu.segments = l.mu.segments[:i]
	return l.opts.FS.SyncDir(l.segDir())
}
