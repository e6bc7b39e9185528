package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
)

// repair truncates dir's damaged log at its first bad record, as
// engine.Options.Repair does, after copying dir to a folder beside it,
// whose name it returns. It returns "" when dir has no damage to repair.
// lim has the key and value limits to read dir with.
func repair(dir string, checkErr error, lim *engine.Options) (kept string, err error) {
	if !errors.Is(checkErr, wal.ErrCorrupt) {
		return "", checkErr
	}
	// Beside the folder, whatever names it: DIR.before-repair-... of "."
	// would be inside it, and the copy would copy itself.
	if dir, err = filepath.Abs(dir); err != nil {
		return "", fmt.Errorf("%w (nothing repaired)", err)
	}
	if kept, err = keepAside(dir, time.Now()); err != nil {
		return "", fmt.Errorf("keeping a copy in %s: %w (nothing repaired)", kept, err)
	}
	if err := copyFolder(dir, kept); err != nil {
		os.RemoveAll(kept)
		return "", fmt.Errorf("keeping a copy in %s: %w (nothing repaired)", kept, err)
	}
	db, err := engine.Open(dir, &engine.Options{Repair: true, SweepInterval: -1, MaxKeySize: lim.MaxKeySize, MaxValueSize: lim.MaxValueSize})
	if err != nil {
		return kept, fmt.Errorf("%w\n(repair truncates the log; it cannot mend a damaged snapshot. The folder as it was is in %s)", err, kept)
	}
	return kept, db.Close()
}

// keepAside makes the empty folder that is to hold dir's copy before a
// repair at time at, beside dir, and returns its name:
// DIR.before-repair-YYYYMMDDTHHMMSSZ, or, when a repair in the same
// second has that, the first of -002, -003, ... after it that is free,
// so that the names sort as the copies were made.
func keepAside(dir string, at time.Time) (string, error) {
	base := fmt.Sprintf("%s.before-repair-%s", filepath.Clean(dir), at.UTC().Format("20060102T150405Z"))
	name := base
	for n := 2; ; n++ {
		if err := os.Mkdir(name, 0o700); !errors.Is(err, fs.ErrExist) {
			return name, err
		}
		name = fmt.Sprintf("%s-%03d", base, n)
	}
}

// syncDir makes a folder's entries durable; tests watch it.
var syncDir = vfs.OSFS{}.SyncDir

// copyFolder copies the files under src, but its LOCK, to dst, which must
// be missing or empty, and syncs them, the folders of the copy, and dst's
// own folder: once it returns, a crash keeps the whole copy.
func copyFolder(src, dst string) error {
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			dirs = append(dirs, to)
			return os.MkdirAll(to, 0o700)
		case rel == "LOCK" || !d.Type().IsRegular():
			return nil
		}
		return copyFile(p, to)
	})
	if err != nil {
		return err
	}
	// Deepest first (WalkDir gave each folder before those in it), then
	// the folder dst is in: each folder's entries are durable before its
	// own entry in its parent.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncDir(dirs[i]); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(filepath.Clean(dst)))
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// salvage opens a copy of dir, in a temporary folder, truncating its log
// at the first damage, and returns it with a func that closes and removes
// it. dir itself is not changed. lim has the key and value limits to read
// dir with.
func salvage(dir string, lim *engine.Options) (*engine.DB, func(), error) {
	if _, err := wal.Check(dir, &wal.Options{MaxRecord: lim.RecordLimit()}); errors.Is(err, vfs.ErrLocked) {
		return nil, nil, fmt.Errorf("%w: stop the livekv using %s first", err, dir)
	}
	tmp, err := os.MkdirTemp("", "livekv-salvage-")
	if err != nil {
		return nil, nil, err
	}
	copyDir := filepath.Join(tmp, "data")
	if err := copyFolder(dir, copyDir); err != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("copying %s to read it: %w", dir, err)
	}
	db, err := engine.Open(copyDir, &engine.Options{Repair: true, SweepInterval: -1, MaxKeySize: lim.MaxKeySize, MaxValueSize: lim.MaxValueSize})
	if err != nil {
		os.RemoveAll(tmp)
		var over *wal.RecordOverLimitError
		if errors.As(err, &over) {
			return nil, nil, openHint(err, "dump")
		}
		return nil, nil, fmt.Errorf("%w\n(salvage reads a log up to its damage; a damaged snapshot cannot be read)", err)
	}
	return db, func() { db.Close(); os.RemoveAll(tmp) }, nil
}
