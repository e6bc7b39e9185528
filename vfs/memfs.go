package vfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
)

// MemFS is an in-memory FS for tests. It remembers what was synced, so
// that Crash can keep only what a real disk would keep after power loss,
// and it can fail the k-th mutating operation.
//
// Its folders are as a disk's: MkdirAll makes them, and each one's entry
// in its parent, like a file's, is durable only once the parent is
// synced (SyncDir); a crash that loses a folder loses all under it, and
// one removed, once that is durable, takes what it held with it (a
// folder made again in its place is empty after any crash). List
// of a missing folder fails, and Remove removes an empty one. A file
// made in a folder that does not exist (Create, Rename, WriteFile) makes
// it, and its parents, durable, as if they had always been there: a
// convenience for tests, where the operating system would fail. Folders
// are not renamed.
type MemFS struct {
	mu     sync.Mutex // guards everything below
	files  map[string]*memFile
	synced map[string]*memFile // directory entries as of the last SyncDir of their directory
	// folders are the folders that exist (by clean path), syncedFolders
	// those whose entries are durable, as of the last SyncDir of their
	// parents. The root ("." or "/") always exists.
	folders, syncedFolders map[string]bool
	// journal holds the creates, renames and removes not yet made durable
	// by a SyncDir, in order: a crash may keep the first of them (a file
	// system's journal commits them in order, a directory synced or not).
	journal []dirOp
	locks   map[string]bool

	ops        int  // mutating operations since the last FailAt
	failAt     int  // fail the failAt-th mutating operation (0: never)
	failAlways bool // and every one after it
}

type memFile struct {
	data   []byte
	synced []byte // contents as of the last Sync
	// cut is the shortest data has been since the last Sync: below
	// len(synced), a truncate that a crash may keep or lose.
	cut int
	// lost are the ranges [from, to) of data that a failed Sync did not
	// write: as Linux does after a writeback error, the pages count as
	// clean, so no later Sync writes them, and a crash reads zeros there.
	lost [][2]int
}

// dirOp is a create (from "", f the new file), a rename (f the file) or a
// remove (to "") of a directory entry; with folder, the making (from "")
// or the removal (to "") of a folder.
type dirOp struct {
	from, to string
	f        *memFile
	folder   bool
}

// errNotEmpty is why a folder that holds files or folders is not removed.
var errNotEmpty = errors.New("directory not empty")

// ErrInjected is the error MemFS injects.
var ErrInjected = errors.New("vfs: injected I/O error")

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS {
	return &MemFS{files: map[string]*memFile{}, synced: map[string]*memFile{},
		folders: map[string]bool{}, syncedFolders: map[string]bool{}, locks: map[string]bool{}}
}

// FailAt makes the k-th mutating operation from now (write, sync,
// truncate, create, rename, remove, the making of a folder, directory
// sync) fail with ErrInjected;
// with always, every one after it fails too. k 0 turns failures off. A
// Sync that fails loses what it was to write, as Linux does: no later
// Sync of the file writes it, and after a crash it reads as zeros.
func (m *MemFS) FailAt(k int, always bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops, m.failAt, m.failAlways = 0, k, always
}

// Ops returns how many mutating operations were made since the last
// FailAt (or NewMemFS): whether the k-th came, to fail.
func (m *MemFS) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// op counts a mutating operation and returns the injected error, if any;
// m.mu is held.
func (m *MemFS) op() error {
	m.ops++
	if m.failAt > 0 && (m.ops == m.failAt || m.failAlways && m.ops > m.failAt) {
		return fmt.Errorf("%w (operation %d)", ErrInjected, m.ops)
	}
	return nil
}

// Crash returns the file system a restart would find: the synced
// directory entries, changed by the given fraction (0 to 1) of the
// creates, renames and removes made since, the first ones in order; each
// file with its synced contents plus the same fraction of what was
// written after its last sync (after a truncate since, if the crash keeps
// any of it: the truncate too). Crash(0) keeps only what was synced,
// Crash(1) all that the OS held. The making and removal of folders are
// directory entries as the creates and removes of files are; what is in
// a folder whose entry the crash lost is lost with it.
func (m *MemFS) Crash(keepUnsynced float64) *MemFS { return m.CrashEach(all(keepUnsynced), false) }

// CrashZeroFilled is Crash on a disk that kept each file's length but not
// all of its data: the rest of what was written after the last sync,
// beyond the fraction kept, reads back as zeros (as on a file system that
// made the new length durable before the data).
func (m *MemFS) CrashZeroFilled(keepUnsynced float64) *MemFS {
	return m.CrashEach(all(keepUnsynced), true)
}

// all is CrashEach's keep for one fraction of every file.
func all(keep float64) func(string) float64 { return func(string) float64 { return keep } }

// CrashEach is Crash on a disk that wrote back more of some files than
// of others: each file keeps the fraction keepOf(name) of what was written
// to it after its last sync, and the directory entries keep the fraction
// keepOf("") of the creates, renames and removes made since their last
// SyncDir. With zeroFill, the rest of each file reads back as zeros, as
// in CrashZeroFilled.
func (m *MemFS) CrashEach(keepOf func(name string) float64, zeroFill bool) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	entries := make(map[string]*memFile, len(m.synced))
	for name, f := range m.synced {
		entries[name] = f
	}
	folders := make(map[string]bool, len(m.syncedFolders))
	for d := range m.syncedFolders {
		folders[d] = true
	}
	for _, op := range m.journal[:int(float64(len(m.journal))*keepOf(""))] {
		if op.folder {
			delete(folders, op.from)
			if op.to != "" {
				folders[op.to] = true
			}
			continue
		}
		delete(entries, op.from)
		if op.to != "" {
			entries[op.to] = op.f
		}
	}
	// in tells whether every folder that name is in survived.
	in := func(name string) bool {
		for d := path.Dir(path.Clean(name)); !isRoot(d); d = path.Dir(d) {
			if !folders[d] {
				return false
			}
		}
		return true
	}
	for d := range folders {
		if in(d) {
			c.folders[d], c.syncedFolders[d] = true, true
		}
	}
	for name, f := range entries {
		if !in(name) {
			continue
		}
		keepUnsynced := keepOf(name)
		data := append([]byte(nil), f.synced...)
		from := len(f.synced) // what was written after the sync starts here
		if f.cut < from {
			// Truncated since: the truncate is lost with the rest, or
			// kept with some of what was written after it.
			from = len(f.data) // nothing to add
			if keepUnsynced > 0 {
				data, from = data[:f.cut], f.cut
			}
		}
		extra := f.data[from:]
		kept := int(float64(len(extra)) * keepUnsynced)
		data = append(data, extra[:kept]...)
		if zeroFill {
			data = append(data, make([]byte, len(extra)-kept)...)
		}
		for _, r := range f.lost { // what a failed Sync lost is zeros on the disk
			clear(data[min(r[0], len(data)):min(r[1], len(data))])
		}
		nf := &memFile{data: data, synced: append([]byte(nil), data...), cut: len(data)}
		c.files[name] = nf
		c.synced[name] = nf
	}
	return c
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return nil, err
	}
	if _, ok := m.files[name]; ok || m.folders[path.Clean(name)] {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	if err := m.makeParents("create", name, false); err != nil {
		return nil, err
	}
	f := &memFile{}
	m.files[name] = f
	m.journal = append(m.journal, dirOp{to: name, f: f})
	return &memHandle{m: m, f: f}, nil
}

// OpenAppend implements FS.
func (m *MemFS) OpenAppend(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memHandle{m: m, f: f}, nil
}

// ReadFile implements FS.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), f.data...), nil
}

// WriteFile replaces a file's contents, synced; tests use it to damage a log.
func (m *MemFS) WriteFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.makeParents("write", name, true); err != nil {
		panic(err)
	}
	f := &memFile{data: append([]byte(nil), data...), synced: append([]byte(nil), data...), cut: len(data)}
	m.files[name], m.synced[name] = f, f
	m.journal = slices.DeleteFunc(m.journal, func(op dirOp) bool { return op.from == name || op.to == name })
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	if _, ok := m.files[name]; ok {
		delete(m.files, name)
		m.journal = append(m.journal, dirOp{from: name})
		return nil
	}
	d := path.Clean(name)
	if !m.folders[d] {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	for n := range m.files {
		if path.Dir(path.Clean(n)) == d {
			return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
		}
	}
	for n := range m.folders {
		if path.Dir(n) == d {
			return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
		}
	}
	delete(m.folders, d)
	m.journal = append(m.journal, dirOp{from: d, folder: true})
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	f, ok := m.files[oldname]
	if !ok {
		if m.folders[path.Clean(oldname)] {
			return &fs.PathError{Op: "rename", Path: oldname, Err: errors.ErrUnsupported}
		}
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if m.folders[path.Clean(newname)] {
		return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrExist}
	}
	if err := m.makeParents("rename", newname, false); err != nil {
		return err
	}
	delete(m.files, oldname)
	m.files[newname] = f
	m.journal = append(m.journal, dirOp{from: oldname, to: newname, f: f})
	return nil
}

// MkdirAll implements FS: it makes dir and those of its parents that do
// not exist, each durable once its parent is synced. Making none is not
// a mutating operation.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []string
	for d := path.Clean(dir); !isRoot(d) && !m.folders[d]; d = path.Dir(d) {
		if _, ok := m.files[d]; ok {
			return &fs.PathError{Op: "mkdir", Path: d, Err: errNotDir}
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := m.op(); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		m.folders[missing[i]] = true
		m.journal = append(m.journal, dirOp{to: missing[i], folder: true})
	}
	return nil
}

// errNotDir is why a file is not made in a file, as in a folder.
var errNotDir = errors.New("not a directory")

// makeParents makes the folders that name is in that do not exist,
// durable: all of them with all; m.mu is held.
func (m *MemFS) makeParents(op, name string, all bool) error {
	for d := path.Dir(path.Clean(name)); !isRoot(d) && (all || !m.folders[d]); d = path.Dir(d) {
		if _, ok := m.files[d]; ok {
			return &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		m.folders[d], m.syncedFolders[d] = true, true
	}
	return nil
}

// isRoot tells whether the clean path d is the root, "." or "/", which
// always exists.
func isRoot(d string) bool { return path.Dir(d) == d }

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) { return m.names(dir, false) }

// Folders returns the names of the folders in dir, sorted: what List
// leaves out, as OSFS.Folders.
func (m *MemFS) Folders(dir string) ([]string, error) { return m.names(dir, true) }

// names returns the names of the folders in dir if folders, else of the
// files, sorted.
func (m *MemFS) names(dir string, folders bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	if !isRoot(dir) && !m.folders[dir] {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	if folders {
		for d := range m.folders {
			if path.Dir(d) == dir {
				names = append(names, path.Base(d))
			}
		}
	} else {
		for name := range m.files {
			if path.Dir(name) == dir {
				names = append(names, path.Base(name))
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return err
	}
	dir = path.Clean(dir)
	if !isRoot(dir) && !m.folders[dir] {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	for i, op := range m.journal {
		if op.folder && op.to == "" && path.Dir(op.from) == dir {
			m.commitEmptied(op.from, m.journal[:i])
		}
	}
	for d := range m.syncedFolders {
		if path.Dir(d) == dir && !m.folders[d] {
			delete(m.syncedFolders, d)
		}
	}
	for d := range m.folders {
		if path.Dir(d) == dir {
			m.syncedFolders[d] = true
		}
	}
	for name := range m.synced {
		if path.Dir(name) == dir {
			if _, ok := m.files[name]; !ok {
				delete(m.synced, name)
			}
		}
	}
	for name, f := range m.files {
		if path.Dir(name) == dir {
			m.synced[name] = f
		}
	}
	// An operation in dir alone is durable now; one that also changed
	// another directory (a rename out of it) stays to be kept, or not.
	m.journal = slices.DeleteFunc(m.journal, func(op dirOp) bool {
		return (op.from == "" || path.Dir(op.from) == dir) && (op.to == "" || path.Dir(op.to) == dir)
	})
	return nil
}

// commitEmptied commits, as SyncDir makes the removal of the folder d
// durable, the operations before it (before) in d's tree: a journal
// commits in order, and d was empty. What d held is no longer durable
// anywhere (a folder made again in its place is another one, empty), a
// rename out of d is left a create of its new name, and one into d a
// removal of its old name. m.mu is held.
func (m *MemFS) commitEmptied(d string, before []dirOp) {
	in := func(name string) bool { return name != "" && strings.HasPrefix(path.Clean(name), d+"/") }
	for i := range before {
		op := &before[i]
		if in(op.from) {
			delete(m.synced, op.from)
			delete(m.syncedFolders, path.Clean(op.from))
			op.from = ""
		}
		if in(op.to) {
			op.to, op.f = "", nil
		}
	}
}

// Lock implements FS.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[name] {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path.Dir(name))
	}
	m.locks[name] = true
	return closerFunc(func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.locks, name)
		return nil
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

type memHandle struct {
	m *MemFS
	f *memFile
}

func (h *memHandle) Write(p []byte) (int, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if err := h.m.op(); err != nil {
		return 0, err
	}
	h.f.data = append(h.f.data, p...)
	return len(p), nil
}

func (h *memHandle) Sync() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	f := h.f
	if err := h.m.op(); err != nil {
		if len(f.data) > len(f.synced) {
			f.lost = append(f.lost, [2]int{len(f.synced), len(f.data)})
		}
		return err
	}
	f.synced = append(f.synced[:0], f.data...)
	f.cut = len(f.data)
	for _, r := range f.lost {
		clear(f.synced[min(r[0], len(f.synced)):min(r[1], len(f.synced))])
	}
	return nil
}

func (h *memHandle) Truncate(size int64) error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if err := h.m.op(); err != nil {
		return err
	}
	if size < int64(len(h.f.data)) {
		h.f.data = h.f.data[:size]
		h.f.cut = min(h.f.cut, int(size))
	} else {
		h.f.data = append(h.f.data, make([]byte, size-int64(len(h.f.data)))...)
	}
	h.f.lost = slices.DeleteFunc(h.f.lost, func(r [2]int) bool { return int64(r[0]) >= size })
	for i := range h.f.lost { // what is written after size is not lost
		h.f.lost[i][1] = min(h.f.lost[i][1], int(size))
	}
	return nil
}

func (h *memHandle) Close() error { return nil }

// KeepBySeed returns, for CrashEach, a choice for each name among keeping
// none, half or all of what is unsynced, made from seed and the name: the
// same for the same seed.
func KeepBySeed(seed uint64) func(name string) float64 {
	return func(name string) float64 {
		h := fnv.New64a()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], seed)
		h.Write(b[:])
		h.Write([]byte(name))
		return [...]float64{0, 0.5, 1}[h.Sum64()%3]
	}
}
