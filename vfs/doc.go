// Package vfs is the file system that livekv keeps its files in, behind an
// interface (FS) so that tests can replace the disk. It uses the standard
// library only.
//
// OSFS is the operating system's file system. Its Lock keeps a second
// Open of a directory out, in this process or another; how depends on the
// operating system (flock(2) on Unix, a share mode of 0 on Windows, and an
// error where neither exists).
//
// OpenRead opens a file to be read in pieces, so that a large one (a
// snapshot) is never held whole in memory: with the FS's own OpenRead if
// it is a ReaderFS, as OSFS and MemFS are, or else from its ReadFile.
//
// MemFS is an in-memory file system for tests. It remembers what was
// synced, its folders' entries included, so that Crash and
// CrashZeroFilled can return what a restart after power loss would find (and CrashEach, with KeepBySeed, what one
// finds when the disk wrote back more of some files than of others), and FailAt makes the k-th mutating
// operation (a write, a sync, a rename...) fail with ErrInjected. A test passes one as
// engine's Options.FS:
//
//	fs := vfs.NewMemFS()
//	db, err := engine.Open("db", &engine.Options{FS: fs})
//	...
//	after := fs.Crash(0) // only what was synced survives
package vfs
