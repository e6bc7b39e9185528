package wal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sync"

	"github.com/livekv/livekv/vfs"
)

// ErrNotEmpty is returned by CreateFromSnapshot for a directory that
// already holds files of a log, or any file or folder but the log's own
// empty ones (a folder is seen where the FS lists folders, as vfs.OSFS
// does).
var ErrNotEmpty = errors.New("wal: directory not empty")

// ErrUnfinishedRestore is returned by Open for a directory where
// CreateFromSnapshot stopped before it finished (a crash, a kill): it
// holds no state, and opening it would serve an empty log as if it were
// the one restored. CreateFromSnapshot takes such a directory as empty:
// restore again.
var ErrUnfinishedRestore = errors.New("wal: an unfinished restore")

// restoreTmp is the name, in the snapshot directory, of the snapshot
// CreateFromSnapshot writes until it is whole.
const restoreTmp = "restore.snap.tmp"

// CreateFromSnapshot makes a new log in dir that holds the snapshot read
// from r (as WriteSnapshot writes it), and returns the snapshot's
// revision: Open then replays exactly that state, and appends go on at the
// next revision. dir must be missing or empty (ErrNotEmpty otherwise).
// The snapshot is streamed to a temporary file, checked as it is read,
// synced, and only then given its name, with its directory synced: on any
// error, a damaged stream (ErrCorrupt) included, nothing is left that Open
// would read, and what CreateFromSnapshot made is removed. A snapshot at
// revision 0 leaves an empty log.
func CreateFromSnapshot(dir string, r io.Reader, opts *Options) (rev int64, err error) {
	return CreateFromSnapshotChecked(dir, r, opts, nil)
}

// CreateFromSnapshotChecked is CreateFromSnapshot, but calls check, if
// not nil, with each item as it is read: an error from it stops the
// restore, which removes what it made, and is returned as it is.
func CreateFromSnapshotChecked(dir string, r io.Reader, opts *Options, check func(*Item) error) (rev int64, err error) {
	o := opts.withDefaults()
	fsys := o.FS
	l := &Log{dir: dir, opts: o}
	var made []string // the directories this call creates, outermost first
	before, err := fsys.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		made = missingFolders(fsys, dir)
		if err := fsys.MkdirAll(dir); err != nil {
			removeFolders(fsys, made)
			return 0, err
		}
	}
	// Held as Open holds it: no Open, and no other restore, runs in dir
	// meanwhile, so that what a restore that stopped left is this one's
	// to write over.
	lockName := path.Join(dir, "LOCK")
	hadLock := slices.Contains(before, "LOCK") // an Open's: dir held a database
	lock, err := fsys.Lock(lockName)
	if err != nil {
		removeFolders(fsys, made)
		return 0, err
	}
	unlock := sync.OnceFunc(func() { lock.Close() })
	defer unlock()
	tmp := path.Join(l.snapDir(), restoreTmp) // Open refuses a folder a crash leaves it in
	named := ""                               // the snapshot, once renamed
	begun := false                            // past the checks: what is in dir is this call's
	var checked error                         // check's, returned as it is
	defer func() {
		if err == nil {
			return
		}
		if begun {
			fsys.Remove(tmp) // best effort: Open removes what is left
			if named != "" {
				fsys.Remove(named) // its directory's sync failed
			}
			fsys.SyncDir(l.snapDir())
		}
		if !hadLock {
			unlock()
			fsys.Remove(lockName) // made here, also in a folder refused as not empty
		}
		removeFolders(fsys, made)
		if begun && !errors.Is(err, ErrCorrupt) && (checked == nil || !errors.Is(err, checked)) {
			err = fmt.Errorf("wal: restoring a snapshot: %w", err)
		}
	}()
	inSnap, _ := fsys.List(l.snapDir())
	unfinished := slices.Contains(inSnap, restoreTmp)
	// The lock file is this call's, or that of an Open that refused what
	// a restore that stopped left.
	ownLock := !hadLock || unfinished
	for _, d := range []string{dir, l.segDir(), l.snapDir()} {
		names, err := fsys.List(d)
		if errors.Is(err, fs.ErrNotExist) {
			if d != dir {
				made = append(made, d)
			}
		} else if err != nil {
			return 0, fmt.Errorf("wal: %w", err)
		}
		names = slices.DeleteFunc(names, func(n string) bool {
			return d == dir && n == "LOCK" && ownLock || d == l.snapDir() && n == restoreTmp
		})
		if len(names) > 0 {
			return 0, fmt.Errorf("%w: %s holds %s", ErrNotEmpty, d, names[0])
		}
		if f := otherFolder(fsys, d, l); f != "" {
			return 0, fmt.Errorf("%w: %s holds the folder %s", ErrNotEmpty, d, f)
		}
	}
	begun = true
	if err := l.makeFolders(made); err != nil { // a crash must not take them, and the snapshot, away
		return 0, err
	}
	if unfinished {
		if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	f, err := fsys.Create(tmp)
	if err != nil {
		return 0, err
	}
	// The file's entry is made durable before the stream is read: a
	// crash from here on leaves it, and Open refuses the folder
	// (ErrUnfinishedRestore) rather than serve it empty.
	if err := fsys.SyncDir(l.snapDir()); err != nil {
		f.Close()
		return 0, err
	}
	var item func(*Item) error
	if check != nil {
		item = func(it *Item) error {
			checked = check(it)
			return checked
		}
	}
	rev, err = ReadSnapshotFrom(io.TeeReader(r, f), o.MaxRecord, Replay{Item: item})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && rev > 0 {
		err = fsys.Rename(tmp, path.Join(l.snapDir(), snapshotName(rev)))
		if err == nil {
			named = path.Join(l.snapDir(), snapshotName(rev))
		}
	} else if err == nil {
		err = fsys.Remove(tmp)
	}
	if err == nil {
		err = fsys.SyncDir(l.snapDir())
	}
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// otherFolder returns a folder in dir that is not one the log l makes
// there (its segments' and snapshots' in l.dir, none in those), where
// fsys lists folders (as vfs.OSFS does); else "".
func otherFolder(fsys vfs.FS, dir string, l *Log) string {
	lister, ok := fsys.(interface {
		Folders(string) ([]string, error)
	})
	if !ok {
		return ""
	}
	names, _ := lister.Folders(dir) // a missing dir holds none; another error shows at MkdirAll
	for _, n := range names {
		if p := path.Join(dir, n); dir != l.dir || p != l.segDir() && p != l.snapDir() {
			return n
		}
	}
	return ""
}

// missingFolders returns dir and those of its ancestors that do not
// exist, outermost first: the folders MkdirAll(dir) makes, each of whose
// entries must be synced in its parent to outlast a crash.
func missingFolders(fsys vfs.FS, dir string) []string {
	var out []string
	for d := path.Clean(dir); ; d = path.Dir(d) {
		if _, err := fsys.List(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		out = append(out, d)
		if path.Dir(d) == d {
			break
		}
	}
	slices.Reverse(out)
	return out
}

// makeFolders makes the log's folders, l.dir and its segments' and
// snapshots', and syncs the entry of each of made (those of them, and of
// l.dir's parents, that were missing) in its parent.
func (l *Log) makeFolders(made []string) error {
	fsys := l.opts.FS
	for _, d := range []string{l.dir, l.segDir(), l.snapDir()} {
		if err := fsys.MkdirAll(d); err != nil {
			return err
		}
	}
	for _, d := range made {
		if err := fsys.SyncDir(path.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// removeFolders removes the folders made, innermost first, as far as
// they are empty: best effort, after a failure.
func removeFolders(fsys vfs.FS, made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		fsys.Remove(made[i])
	}
}
