package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"path"
)

// Snapshot writes a snapshot of the state at revision rev, whose items
// items yields in key order, then removes the snapshot and the segments it
// replaces, but none that Retain asks to keep. rev must be durable; appends
// go on meanwhile. The snapshot is written to a temporary file, synced,
// renamed and its directory synced before anything is removed, so a crash
// at any point leaves either the old snapshot and its segments or the new
// one. A nil items (the empty state is a sequence that yields nothing),
// or an item that breaks Item's rules or is nil, fails it with an error
// that wraps ErrInvalid before the new snapshot is in place: the
// temporary file is removed and nothing else changes. So does an item
// whose record's payload is over Options.MaxRecord, which Open would
// refuse, with an error that wraps ErrTooLarge. A failure is returned and
// leaves the log usable; a snapshot at or below the newest one does
// nothing.
func (l *Log) Snapshot(rev int64, items iter.Seq[*Item]) error {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	l.mu.Lock()
	closing, durable, old := l.mu.closing, l.mu.durable, l.mu.snapRev
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
	// One a try at rev left, its removal failing too, is in the way.
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wal: snapshot: %w", err)
	}
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("wal: snapshot: %w", err)
	}
	// Open reads the snapshot with this limit (readSnapshot).
	_, err = writeSnapshot(f, rev, min(l.opts.MaxRecord, maxFrame), items)
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
	l.mu.snapRev = rev
	l.mu.stats.Snapshots++
	l.mu.stats.SnapshotRevision = rev
	keep := min(rev, l.mu.retain)
	covered := 0
	for covered+1 < len(l.mu.segments) && l.mu.segments[covered+1].first <= keep+1 {
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
	l.mu.retain = rev
}
