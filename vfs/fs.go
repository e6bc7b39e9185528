package vfs

import (
	"errors"
	"io"
	"os"
	"sort"
)

// FS is a file system, as the write-ahead log uses one: the operating
// system's (OSFS), or in tests one that simulates crashes or injects errors
// (MemFS).
type FS interface {
	// Create creates a new, empty file for writing; it fails if the file
	// exists.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for writing at its end.
	OpenAppend(name string) (File, error)
	// ReadFile returns a file's contents.
	ReadFile(name string) ([]byte, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string) error
	// List returns the names of the files in dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the directory's entries (creates, renames, removes)
	// durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the file name, creating it; the
	// lock is held until the Closer is closed. A lock held elsewhere, in
	// this process or another, is ErrLocked.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// ErrLocked is returned when another Open holds the directory.
var ErrLocked = errors.New("vfs: directory locked by another process or DB")

// OSFS is the operating system's file system.
type OSFS struct{}

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// OpenAppend implements FS.
func (OSFS) OpenAppend(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
}

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }

// List implements FS.
func (OSFS) List(dir string) ([]string, error) { return names(dir, false) }

// Folders returns the names of the folders in dir, sorted: what List
// leaves out. A caller that must know a folder empty (wal's restore) asks
// it of an FS that has it.
func (OSFS) Folders(dir string) ([]string, error) { return names(dir, true) }

// names returns the names of the folders in dir if folders, else of the
// files, sorted.
func names(dir string, folders bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() == folders {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error { return syncDir(dir) }

// Lock implements FS. How depends on the operating system (lock_*.go);
// where it can lock, a second Open in the same process is excluded too.
func (OSFS) Lock(name string) (io.Closer, error) { return lockFile(name) }
