package wal

import (
	"fmt"
	"path"

	"github.com/livekv/livekv/vfs"
)

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
// anything and reports what it found. Damage that the engine's Open would
// refuse, a damaged last record, a gap between revisions and a log
// without a snapshot that starts after revision 1 included, is returned
// as an error that errors.Is(err, ErrCorrupt) recognises and that names
// the segment and the offset; a torn tail, which Open truncates, and
// damage in segments kept only for the history, which Open drops, are only
// reported. The directory must not be open: Check takes its lock.
func Check(dir string, opts *Options) (Report, error) {
	l := &Log{opts: opts.withDefaults(), dir: dir}
	fsys := l.opts.FS
	lock, err := fsys.Lock(path.Join(dir, "LOCK"))
	if err != nil {
		return Report{}, err
	}
	defer lock.Close()
	var rep Report
	revs, _, err := l.snapshots() // as Open lists them, refusing what it refuses
	if err != nil {
		return rep, err
	}
	for _, rev := range revs {
		name := path.Join(l.snapDir(), snapshotName(rev))
		f, err := vfs.OpenRead(fsys, name)
		if err != nil {
			return rep, err
		}
		rep.SnapshotItems = 0
		rev, err := readSnapshot(f, l.opts.MaxRecord, func(*Item) error { rep.SnapshotItems++; return nil }, true)
		f.Close()
		if err != nil {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		rep.SnapshotRevision = rev // revs are in order: the last is the newest
	}
	rep.LastRevision = rep.SnapshotRevision
	l.mu.snapRev = rep.SnapshotRevision
	if l.mu.segments, err = l.listSegments(); err != nil {
		return rep, err
	}
	var names []string
	for _, seg := range l.mu.segments {
		names = append(names, segmentName(seg.first))
	}
	hc := l.historyDamage(l.mu.snapRev, 0)
	if hc.err != nil {
		return rep, hc.err
	}
	n := hc.n
	if n > 0 {
		rep.HistoryDamage, rep.HistorySegmentsLost = hc.damage.Error(), n
		names = names[n:]
	}
	for i, name := range names {
		last := i == len(names)-1
		size, res, bad, err := l.readSegment(path.Join(l.segDir(), name), last, nil, func(tx *Tx) error {
			// The first record after no snapshot is revision 1, as the
			// engine's replay requires.
			if tx.Revision != rep.LastRevision+1 {
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
		case size < segmentHeaderSize:
			rep.TornBytes += size
		case res.Torn:
			rep.TornBytes += size - res.Good
		}
	}
	return rep, nil
}
