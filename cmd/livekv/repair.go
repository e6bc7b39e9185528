package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
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
	// SIGINT or SIGTERM would kill the process midway, leaving a copy
	// cut short under the name of the folder as it was: they stop the
	// copy instead, which is then removed, and nothing is repaired.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = copyFolderUntil(ctx, dir, kept)
	if err == nil {
		err = ctx.Err() // a signal as the copy ended
	}
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		os.RemoveAll(kept)
		if interrupted {
			return "", fmt.Errorf("%w while keeping a copy of %s: nothing repaired, no copy kept", errInterrupted, dir)
		}
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

// copyFolderUntil copies the folder src to dst, which it makes: every
// folder and regular file in it but the LOCK file, each file synced, then
// each folder's entries. It stops, before the next file (or within one:
// copyFile), once ctx is done.
func copyFolderUntil(ctx context.Context, src, dst string) error {
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
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
		return copyFile(ctx, p, to)
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

// copyChunk is how much copyFile copies between two looks at its
// context.
const copyChunk = 4 << 20

// copyFile copies the file from to the new file to, and syncs it. It
// stops, within the file, once ctx is done: a snapshot or a log segment
// may take long to copy.
func copyFile(ctx context.Context, from, to string) error {
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
	for {
		if err := ctx.Err(); err != nil {
			out.Close()
			return err
		}
		// io.CopyN keeps os.File's in-kernel copy.
		if _, err := io.CopyN(out, in, copyChunk); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// salvage opens a copy of dir, in a temporary folder that g removes
// (release), truncating its log at the first damage. dir itself is not
// changed. lim has the key and value limits to read dir with. A signal
// that g catches while the copy is made stops it: salvage then removes
// what it copied and returns the signal's error.
func salvage(g *tempGuard, dir string, lim *engine.Options) (*engine.DB, error) {
	if _, err := wal.Check(dir, &wal.Options{MaxRecord: lim.RecordLimit()}); errors.Is(err, vfs.ErrLocked) {
		return nil, fmt.Errorf("%w: stop the livekv using %s first", err, dir)
	}
	g.mu.Lock() // a signal waits for the copy to be made, or given up
	defer g.mu.Unlock()
	if err := g.stopped(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "livekv-salvage-")
	if err != nil {
		return nil, err
	}
	copyDir := filepath.Join(tmp, "data")
	if err := copyFolderUntil(g.ctx, dir, copyDir); err != nil {
		os.RemoveAll(tmp)
		if err := g.stopped(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("copying %s to read it: %w", dir, err)
	}
	db, err := engine.Open(copyDir, &engine.Options{Repair: true, SweepInterval: -1, MaxKeySize: lim.MaxKeySize, MaxValueSize: lim.MaxValueSize})
	if err != nil {
		os.RemoveAll(tmp)
		var over *wal.RecordOverLimitError
		if errors.As(err, &over) {
			return nil, openHint(err, "dump")
		}
		return nil, fmt.Errorf("%w\n(salvage reads a log up to its damage; a damaged snapshot cannot be read)", err)
	}
	if err := g.stopped(); err != nil {
		db.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	g.db, g.dir = db, tmp
	return db, nil
}

// tempGuard removes dump --salvage's temporary copy however the command
// ends. SIGINT, SIGTERM and SIGPIPE would kill the process before its
// deferred functions run, leaving the copy, as large as the folder, in
// $TMPDIR: from guardTemp to release it catches them. A write to a
// closed stdout then returns EPIPE, which ends the command as an error
// does; SIGINT or SIGTERM cancels ctx, and, once the copy is made,
// removes it and exits 1 at once, as the command may be blocked writing
// to a stdout that nobody reads.
type tempGuard struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	sigs   chan os.Signal
	quit   chan struct{}
	mu     sync.Mutex
	db     *engine.DB // the open copy, and the folder that holds it,
	dir    string     // until removed
}

// errInterrupted is the error of a command stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func guardTemp() *tempGuard {
	g := &tempGuard{sigs: make(chan os.Signal, 1), quit: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancelCause(context.Background())
	signal.Notify(g.sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go g.watch()
	return g
}

func (g *tempGuard) watch() {
	for {
		select {
		case <-g.quit:
			return
		case s := <-g.sigs:
			if s == syscall.SIGPIPE {
				continue // the write that met the closed pipe returns EPIPE
			}
			err := fmt.Errorf("%w (%v): the output is incomplete", errInterrupted, s)
			g.cancel(err)
			g.mu.Lock()
			if g.dir != "" {
				os.RemoveAll(g.dir) // open, but a process's open files go with it
				fmt.Fprintf(os.Stderr, "livekv dump: %v\n", err)
				os.Exit(1)
			}
			g.mu.Unlock() // salvage gave up the copy, or release removed it
		}
	}
}

// stopped returns the error of the signal that stopped the command, if
// one did.
func (g *tempGuard) stopped() error {
	if g.ctx.Err() != nil {
		return context.Cause(g.ctx)
	}
	return nil
}

// release closes and removes the copy, then lets signals act as before.
func (g *tempGuard) release() {
	g.mu.Lock()
	if g.dir != "" {
		g.db.Close()
		os.RemoveAll(g.dir)
		g.db, g.dir = nil, ""
	}
	g.mu.Unlock()
	signal.Stop(g.sigs)
	close(g.quit)
	g.cancel(nil)
}
