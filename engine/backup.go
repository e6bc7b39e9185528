package engine

import (
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/livekv/livekv/wal"
)

// ErrNotEmpty is returned by RestoreDir for a folder that is not empty.
var ErrNotEmpty = wal.ErrNotEmpty

// Backup writes a snapshot of the database at one revision to w and
// returns that revision: the newest committed when Backup began. Writers
// and readers go on meanwhile, since it reads a copy-on-write view, as a
// checkpoint does. The bytes are those of a snapshot file of the log
// (snap/<rev>.snap; see package wal), so RestoreDir makes a folder of
// them that Open opens at exactly that state. A new database backs up as
// revision 0, the empty state. An error from w is returned as it is.
func (db *DB) Backup(w io.Writer) (rev int64, err error) {
	if db.closed.Load() {
		return 0, ErrClosed
	}
	s := db.snapshot()
	defer db.closeSnapshot(s)
	if _, err := wal.WriteSnapshot(w, s.rev, snapshotItems(s.t, s.rev)); err != nil {
		return 0, err
	}
	return s.rev, nil
}

// RestoreDir makes the database folder dir from a snapshot that Backup
// wrote, read from r, and returns its revision: Open(dir) then opens the
// database exactly as it was at that revision, and commits go on from the
// next. dir must be missing or empty, else ErrNotEmpty. opts are those
// Open will be given (their FS and size limits are used). The snapshot is
// checked as it is read and written under a temporary name, synced, then
// named: on any error, a damaged snapshot (an error that
// errors.Is(err, wal.ErrCorrupt) recognises) included, nothing is left
// that Open would read. A key or a value over opts' limits, which Open
// would refuse, is an *OverLimitError.
func RestoreDir(r io.Reader, dir string, opts *Options) (rev int64, err error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return 0, err
	}
	if dir == "" {
		return 0, fmt.Errorf("%w: RestoreDir needs a folder", ErrInvalidOptions)
	}
	rev, err = wal.CreateFromSnapshotChecked(dir, r, &wal.Options{FS: o.FS, MaxRecord: o.maxRecord()}, func(it *wal.Item) error {
		return o.checkLimits(it.Key, it.Value) // Open would refuse the folder
	})
	if err != nil {
		var over *OverLimitError
		if errors.Is(err, wal.ErrNotEmpty) || errors.Is(err, wal.ErrCorrupt) || errors.As(err, &over) {
			return 0, err
		}
		return 0, fmt.Errorf("engine: %w", err)
	}
	return rev, nil
}

// snapshotItems yields the keys of the tree copy t as of revision rev, in
// key order, as a snapshot holds them. Expired keys not yet swept are
// kept: their expiry is still to come as a change, after the snapshot.
func snapshotItems(t treeCopy, rev int64) iter.Seq[*wal.Item] {
	return func(yield func(*wal.Item) bool) {
		var it wal.Item
		t.Scan(func(ti treeItem) bool {
			e := t.entry(ti)
			v := e.at(rev, t.tab)
			if v.ver == 0 {
				return true
			}
			it = wal.Item{Key: t.tab.key(e), Value: v.value, Revision: v.rev,
				CreateRevision: v.created, Version: v.ver, Expires: v.expires}
			return yield(&it)
		})
	}
}
