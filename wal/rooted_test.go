package wal_test

import (
	"errors"
	"io"
	"path/filepath"
	"strings"

	"github.com/livekv/livekv/vfs"
)

// rootedFS is an FS whose paths are under root, so that tests can use the
// same relative paths on the OS file system as on vfs.MemFS.
type rootedFS struct {
	fs   vfs.FS
	root string
}

func (r rootedFS) p(name string) string                     { return filepath.Join(r.root, name) }
func (r rootedFS) Create(name string) (vfs.File, error)     { return r.fs.Create(r.p(name)) }
func (r rootedFS) OpenAppend(name string) (vfs.File, error) { return r.fs.OpenAppend(r.p(name)) }
func (r rootedFS) ReadFile(name string) ([]byte, error)     { return r.fs.ReadFile(r.p(name)) }
func (r rootedFS) Remove(name string) error                 { return r.fs.Remove(r.p(name)) }
func (r rootedFS) Rename(a, b string) error                 { return r.fs.Rename(r.p(a), r.p(b)) }
func (r rootedFS) MkdirAll(dir string) error                { return r.fs.MkdirAll(r.p(dir)) }
func (r rootedFS) List(dir string) ([]string, error)        { return r.fs.List(r.p(dir)) }
func (r rootedFS) SyncDir(dir string) error                 { return r.fs.SyncDir(r.p(dir)) }
func (r rootedFS) Lock(name string) (io.Closer, error)      { return r.fs.Lock(r.p(name)) }

func (r rootedFS) OpenRead(name string) (vfs.Reader, error) { return vfs.OpenRead(r.fs, r.p(name)) }

// streamOnly is a ReaderFS that refuses to read a snapshot whole.
type streamOnly struct{ vfs.ReaderFS }

func (s streamOnly) ReadFile(name string) ([]byte, error) {
	if strings.HasSuffix(name, ".snap") {
		return nil, errors.New("a snapshot read whole")
	}
	return s.ReaderFS.ReadFile(name)
}
