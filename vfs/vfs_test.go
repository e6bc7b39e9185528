package vfs_test

import (
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/livekv/livekv/internal/leaktest"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func write(t *testing.T, f vfs.File, s string) {
	t.Helper()
	n, err := io.WriteString(f, s)
	require.NoError(t, err)
	require.Equal(t, len(s), n)
}

func TestMemFS_Crash(t *testing.T) {
	m := vfs.NewMemFS()
	f, err := m.Create("d/a")
	require.NoError(t, err)
	write(t, f, "synced")
	require.NoError(t, f.Sync())
	require.NoError(t, m.SyncDir("d"))
	write(t, f, "-more")
	g, err := m.Create("d/b") // its directory entry is never synced
	require.NoError(t, err)
	write(t, g, "b")
	require.NoError(t, g.Sync())

	for _, tc := range []struct {
		name  string
		c     *vfs.MemFS
		want  string
		names []string
	}{
		{"none kept", m.Crash(0), "synced", []string{"a"}},
		{"all kept", m.Crash(1), "synced-more", []string{"a", "b"}},
		{"some kept", m.Crash(0.4), "synced-m", []string{"a"}},
		{"zero-filled", m.CrashZeroFilled(0.4), "synced-m\x00\x00\x00", []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := tc.c.List("d")
			require.NoError(t, err)
			require.Equal(t, tc.names, names, "synced directory entries survive, unsynced ones as kept")
			got, err := tc.c.ReadFile("d/a")
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
}

func TestMemFS_Crash_RemoveNotSynced(t *testing.T) {
	m := vfs.NewMemFS()
	m.WriteFile("d/a", []byte("x"))
	require.NoError(t, m.Remove("d/a"))
	got, err := m.Crash(0).ReadFile("d/a")
	require.NoError(t, err, "a remove without SyncDir is lost in a crash")
	require.Equal(t, "x", string(got))

	require.NoError(t, m.SyncDir("d"))
	_, err = m.Crash(0).ReadFile("d/a")
	require.Error(t, err)
}

func TestMemFS_FailAt(t *testing.T) {
	for _, always := range []bool{false, true} {
		m := vfs.NewMemFS()
		f, err := m.Create("a")
		require.NoError(t, err)
		m.FailAt(2, always)
		write(t, f, "1")
		_, err = io.WriteString(f, "2")
		require.ErrorIs(t, err, vfs.ErrInjected)
		_, err = io.WriteString(f, "3")
		if always {
			require.ErrorIs(t, err, vfs.ErrInjected, "every operation after the k-th fails")
		} else {
			require.NoError(t, err, "only the k-th operation fails")
		}
		m.FailAt(0, false)
		require.NoError(t, f.Sync())
	}
}

// fsCase is a file system to run a test on, and a folder in it.
type fsCase struct {
	name string
	fs   vfs.FS
	dir  string
}

// fileSystems returns the two file systems, each with an empty folder.
func fileSystems(t *testing.T) []fsCase {
	return []fsCase{
		{"MemFS", vfs.NewMemFS(), "db"},
		{"OSFS", vfs.OSFS{}, t.TempDir()},
	}
}

func TestFS_Lock(t *testing.T) {
	for _, tc := range fileSystems(t) {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(tc.dir, "LOCK")
			l, err := tc.fs.Lock(name)
			require.NoError(t, err)
			_, err = tc.fs.Lock(name)
			require.ErrorIs(t, err, vfs.ErrLocked, "a second lock in the same process")
			require.NoError(t, l.Close())
			l, err = tc.fs.Lock(name)
			require.NoError(t, err, "the lock is free once closed")
			require.NoError(t, l.Close())
		})
	}
}

// readOnly is an FS that is not a ReaderFS: OpenRead falls back to its
// ReadFile.
type readOnly struct{ vfs.FS }

func TestOpenRead(t *testing.T) {
	for _, tc := range append(fileSystems(t), fsCase{"ReadFile", readOnly{vfs.NewMemFS()}, "db"}) {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(tc.dir, "f")
			f, err := tc.fs.Create(name)
			require.NoError(t, err)
			write(t, f, "0123456789")
			require.NoError(t, f.Close())

			r, err := vfs.OpenRead(tc.fs, name)
			require.NoError(t, err)
			require.EqualValues(t, 10, r.Size())
			tail := make([]byte, 3)
			n, err := r.ReadAt(tail, 7)
			require.NoError(t, err)
			require.Equal(t, "789", string(tail[:n]))
			head := make([]byte, 4)
			_, err = io.ReadFull(r, head)
			require.NoError(t, err)
			require.Equal(t, "0123", string(head), "ReadAt leaves Read's offset alone")
			rest, err := io.ReadAll(r)
			require.NoError(t, err)
			require.Equal(t, "456789", string(rest))
			require.NoError(t, r.Close())

			_, err = vfs.OpenRead(tc.fs, filepath.Join(tc.dir, "missing"))
			require.ErrorIs(t, err, fs.ErrNotExist)
		})
	}
	var _ vfs.ReaderFS = vfs.OSFS{}
	var _ vfs.ReaderFS = vfs.NewMemFS()
}

// TestMemFS_Crash_FailedSyncLosesData: after a failed fsync, Linux marks
// the pages it could not write clean, and a later fsync that succeeds
// does not write them: what was written before the failure may be gone
// after a crash, whatever fsync says next. A MemFS that made it durable on
// the next Sync would pass code that retries a failed fsync.
func TestMemFS_Crash_FailedSyncLosesData(t *testing.T) {
	m := vfs.NewMemFS()
	f, err := m.Create("d/a")
	require.NoError(t, err)
	require.NoError(t, m.SyncDir("d"))
	write(t, f, "synced")
	require.NoError(t, f.Sync())
	write(t, f, "-lost")
	m.FailAt(1, false)
	require.ErrorIs(t, f.Sync(), vfs.ErrInjected)
	m.FailAt(0, false)
	got, err := m.ReadFile("d/a")
	require.NoError(t, err)
	require.Equal(t, "synced-lost", string(got), "the data is still in the OS")

	require.NoError(t, f.Sync(), "a retry reports success")
	write(t, f, "-later")
	require.NoError(t, f.Sync())
	got, err = m.Crash(0).ReadFile("d/a")
	require.NoError(t, err)
	require.Equal(t, "synced\x00\x00\x00\x00\x00-later", string(got),
		"the retry did not write what the failed sync lost; later writes are durable")
}

// TestMemFS_Crash_DirectoryOperationsInOrder: a file system's journal may
// commit creates, renames and removes before their directory is synced,
// in the order they were made: a crash keeps none, some or all of them,
// always the first ones. Keeping none alone would hide code that removes
// files in an order whose prefix is no state it can read.
func TestMemFS_Crash_DirectoryOperationsInOrder(t *testing.T) {
	m := vfs.NewMemFS()
	for _, name := range []string{"d/1", "d/2", "d/3"} {
		m.WriteFile(name, []byte(name))
	}
	require.NoError(t, m.Remove("d/1"))
	require.NoError(t, m.Rename("d/2", "d/4"))
	f, err := m.Create("d/5")
	require.NoError(t, err)
	write(t, f, "5")
	require.NoError(t, f.Sync())
	require.NoError(t, m.Remove("d/3"))

	for keep, want := range map[float64][]string{
		0:    {"1", "2", "3"},
		0.25: {"2", "3"},
		0.5:  {"3", "4"},
		0.75: {"3", "4", "5"},
		1:    {"4", "5"},
	} {
		names, err := m.Crash(keep).List("d")
		require.NoError(t, err)
		require.Equal(t, want, names, "keep %v of the directory operations", keep)
	}
	got, err := m.Crash(1).ReadFile("d/4")
	require.NoError(t, err)
	require.Equal(t, "d/2", string(got), "a rename keeps the file")

	require.NoError(t, m.SyncDir("d"))
	names, err := m.Crash(0).List("d")
	require.NoError(t, err)
	require.Equal(t, []string{"4", "5"}, names)
}

// TestMemFS_Crash_Truncate: a truncate not yet synced is lost in a crash
// that keeps nothing unsynced, or kept, with as much of what was written
// after it as the crash keeps; a truncate past the end extends the file
// with zeros, as ftruncate does.
func TestMemFS_Crash_Truncate(t *testing.T) {
	m := vfs.NewMemFS()
	f, err := m.Create("d/a")
	require.NoError(t, err)
	require.NoError(t, m.SyncDir("d"))
	write(t, f, "synced-tail")
	require.NoError(t, f.Sync())
	require.NoError(t, f.Truncate(6))
	write(t, f, "-new")
	for keep, want := range map[float64]string{0: "synced-tail", 0.5: "synced-n", 1: "synced-new"} {
		got, err := m.Crash(keep).ReadFile("d/a")
		require.NoError(t, err)
		require.Equal(t, want, string(got), "keep %v", keep)
	}
	require.NoError(t, f.Truncate(12))
	require.NoError(t, f.Sync())
	got, err := m.Crash(0).ReadFile("d/a")
	require.NoError(t, err)
	require.Equal(t, "synced-new\x00\x00", string(got))
}

// TestMemFS_Crash_FailedSyncLostThoughNotSyncedAgain: what a failed Sync
// lost reads as zeros after a crash, however much of the unsynced data
// the crash keeps, whether or not a Sync came after the failed one.
func TestMemFS_Crash_FailedSyncLostThoughNotSyncedAgain(t *testing.T) {
	m := vfs.NewMemFS()
	f, err := m.Create("d/a")
	require.NoError(t, err)
	require.NoError(t, m.SyncDir("d"))
	write(t, f, "synced")
	require.NoError(t, f.Sync())
	write(t, f, "-lost")
	m.FailAt(1, false)
	require.ErrorIs(t, f.Sync(), vfs.ErrInjected)
	m.FailAt(0, false)
	write(t, f, "-more")
	for keep, want := range map[float64]string{
		0:   "synced",
		0.5: "synced\x00\x00\x00\x00\x00",
		1:   "synced\x00\x00\x00\x00\x00-more",
	} {
		got, err := m.Crash(keep).ReadFile("d/a")
		require.NoError(t, err)
		require.Equal(t, want, string(got), "keep %v", keep)
	}
	got, err := m.CrashZeroFilled(0).ReadFile("d/a")
	require.NoError(t, err)
	require.Equal(t, "synced\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", string(got))
}

// TestMemFS_Crash_WrittenAfterTruncateIntoLost: a truncate into what a
// failed Sync lost, then a write there, leaves that write to be synced:
// only what was lost and not written again reads as zeros.
func TestMemFS_Crash_WrittenAfterTruncateIntoLost(t *testing.T) {
	m := vfs.NewMemFS()
	f, err := m.Create("d/a")
	require.NoError(t, err)
	require.NoError(t, m.SyncDir("d"))
	write(t, f, "synced")
	require.NoError(t, f.Sync())
	write(t, f, "-lost")
	m.FailAt(1, false)
	require.ErrorIs(t, f.Sync(), vfs.ErrInjected)
	m.FailAt(0, false)
	require.NoError(t, f.Truncate(8))
	write(t, f, "XYZ")
	require.NoError(t, f.Sync())
	got, err := m.Crash(0).ReadFile("d/a")
	require.NoError(t, err)
	require.Equal(t, "synced\x00\x00XYZ", string(got))
}

// TestMemFS_CrashEach: each file keeps its own fraction of what was
// written after its last sync, and the directory entries theirs.
func TestMemFS_CrashEach(t *testing.T) {
	m := vfs.NewMemFS()
	for _, name := range []string{"d/a", "d/b"} {
		f, err := m.Create(name)
		require.NoError(t, err)
		write(t, f, "synced")
		require.NoError(t, f.Sync())
		write(t, f, "-more")
	}
	require.NoError(t, m.SyncDir("d"))
	_, err := m.Create("d/c") // its entry is never synced
	require.NoError(t, err)

	keep := map[string]float64{"": 1, "d/a": 1, "d/b": 0}
	for _, zeroFill := range []bool{false, true} {
		c := m.CrashEach(func(name string) float64 { return keep[name] }, zeroFill)
		names, err := c.List("d")
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c"}, names)
		a, err := c.ReadFile("d/a")
		require.NoError(t, err)
		require.Equal(t, "synced-more", string(a))
		b, err := c.ReadFile("d/b")
		require.NoError(t, err)
		if zeroFill {
			require.Equal(t, "synced\x00\x00\x00\x00\x00", string(b))
		} else {
			require.Equal(t, "synced", string(b))
		}
	}
	names, err := m.CrashEach(func(string) float64 { return 0 }, false).List("d")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, names)

	k := vfs.KeepBySeed(7)
	require.Equal(t, k("d/a"), vfs.KeepBySeed(7)("d/a"), "the same seed chooses the same")
	seen := map[float64]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		seen[vfs.KeepBySeed(seed)("d/a")] = true
	}
	require.Len(t, seen, 3, "the seeds choose each of none, half and all")
}

// TestMemFS_Folders: MemFS's folders are as the operating system's: List
// of a missing one fails, Remove removes only an empty one, and a file
// made in a folder no MkdirAll made makes it.
func TestMemFS_Folders(t *testing.T) {
	for _, fsys := range []interface {
		vfs.FS
		Folders(string) ([]string, error)
	}{vfs.NewMemFS(), vfs.OSFS{}} {
		root := "."
		if _, ok := fsys.(vfs.OSFS); ok {
			root = t.TempDir()
		}
		p := func(name string) string { return filepath.ToSlash(filepath.Join(root, name)) }
		_, err := fsys.List(p("db"))
		require.ErrorIs(t, err, fs.ErrNotExist)
		if _, ok := fsys.(*vfs.MemFS); ok { // Windows syncs no folder
			require.ErrorIs(t, fsys.SyncDir(p("db")), fs.ErrNotExist)
		}
		require.NoError(t, fsys.MkdirAll(p("db/wal")))
		require.NoError(t, fsys.MkdirAll(p("db/wal")), "made already")
		names, err := fsys.List(p("db/wal"))
		require.NoError(t, err)
		require.Empty(t, names)
		f, err := fsys.Create(p("db/wal/1"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		names, err = fsys.List(p("db"))
		require.NoError(t, err)
		require.Empty(t, names, "List leaves folders out")
		names, err = fsys.Folders(p("db"))
		require.NoError(t, err)
		require.Equal(t, []string{"wal"}, names)
		require.Error(t, fsys.Remove(p("db/wal")), "not empty")
		require.Error(t, fsys.Remove(p("db")), "not empty")
		require.NoError(t, fsys.Remove(p("db/wal/1")))
		require.NoError(t, fsys.Remove(p("db/wal")))
		_, err = fsys.List(p("db/wal"))
		require.ErrorIs(t, err, fs.ErrNotExist)
		names, err = fsys.Folders(p("db"))
		require.NoError(t, err)
		require.Empty(t, names)
	}

	m := vfs.NewMemFS()
	f, err := m.Create("new/a")
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, m.SyncDir("new"))
	names, err := m.Crash(0).List("new")
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, names, "a folder made by a file in it is durable")
}

// TestMemFS_Crash_Folders: a folder's entry is durable once its parent
// is synced, as a file's is; a crash that loses it loses what is in it,
// synced or not, and an unsynced removal of an empty folder may be lost.
func TestMemFS_Crash_Folders(t *testing.T) {
	m := vfs.NewMemFS()
	require.NoError(t, m.MkdirAll("db/wal"))
	f, err := m.Create("db/wal/1")
	require.NoError(t, err)
	write(t, f, "x")
	require.NoError(t, f.Sync())
	require.NoError(t, m.SyncDir("db/wal"))

	requireGone := func(c *vfs.MemFS, dir, what string) {
		t.Helper()
		_, err := c.List(dir)
		require.ErrorIs(t, err, fs.ErrNotExist, what)
		_, err = c.ReadFile("db/wal/1")
		require.ErrorIs(t, err, fs.ErrNotExist, what)
	}
	requireGone(m.Crash(0), "db", "no folder synced")
	requireGone(m.CrashEach(func(string) float64 { return 0 }, false), "db", "no folder synced")
	requireGone(m.Crash(0.4), "db/wal", "the first directory operation kept") // of 3
	got, err := m.Crash(1).ReadFile("db/wal/1")
	require.NoError(t, err)
	require.Equal(t, "x", string(got), "all kept")

	require.NoError(t, m.SyncDir("."))
	requireGone(m.Crash(0), "db/wal", "db/wal not synced in db")
	require.NoError(t, m.SyncDir("db"))
	c := m.Crash(0)
	got, err = c.ReadFile("db/wal/1")
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	names, err := c.Folders("db")
	require.NoError(t, err)
	require.Equal(t, []string{"wal"}, names)

	require.NoError(t, m.MkdirAll("db/snap"))
	require.NoError(t, m.SyncDir("db"))
	require.NoError(t, m.Remove("db/snap"))
	names, err = m.Crash(0).Folders("db")
	require.NoError(t, err)
	require.Equal(t, []string{"snap", "wal"}, names, "a removal not synced")
	require.NoError(t, m.SyncDir("db"))
	names, err = m.Crash(0).Folders("db")
	require.NoError(t, err)
	require.Equal(t, []string{"wal"}, names)
}

// TestMemFS_Crash_FolderMadeAgainIsEmpty: a folder removed, the removal
// synced in its parent, and made again in its place is another folder,
// empty: no crash brings back into it what the removed one held, durable
// or not (a journal commits in order: the removal of the folder, durable,
// comes after those of its files and folders, and after their creation).
// What was renamed out of it stays where it went.
func TestMemFS_Crash_FolderMadeAgainIsEmpty(t *testing.T) {
	m := vfs.NewMemFS()
	require.NoError(t, m.MkdirAll("db/snap/sub"))
	for _, name := range []string{"db/snap/a", "db/snap/moved", "db/snap/sub/x"} {
		f, err := m.Create(name)
		require.NoError(t, err)
		write(t, f, "x")
		require.NoError(t, f.Sync())
	}
	for _, d := range []string{"db/snap/sub", "db/snap", "db", "."} {
		require.NoError(t, m.SyncDir(d))
	}
	require.NoError(t, m.MkdirAll("elsewhere"))
	require.NoError(t, m.SyncDir("."))
	f, err := m.Create("elsewhere/in")
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, m.SyncDir("elsewhere"))

	// Emptied without a sync of the folder: the journal holds it all.
	f, err = m.Create("db/snap/new") // made and removed
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, m.Rename("elsewhere/in", "db/snap/in")) // moved in, then removed
	require.NoError(t, m.Rename("db/snap/moved", "db/moved"))
	for _, name := range []string{"db/snap/a", "db/snap/new", "db/snap/in", "db/snap/sub/x", "db/snap/sub", "db/snap"} {
		require.NoError(t, m.Remove(name))
	}
	require.NoError(t, m.SyncDir("db"))
	require.NoError(t, m.MkdirAll("db/snap"))
	require.NoError(t, m.SyncDir("db"))

	images := map[string]*vfs.MemFS{}
	for _, keep := range []float64{0, 0.25, 0.5, 0.75, 1} {
		images[fmt.Sprintf("keeping %v", keep)] = m.Crash(keep)
	}
	for seed := uint64(1); seed <= 8; seed++ {
		images[fmt.Sprintf("seed %d", seed)] = m.CrashEach(vfs.KeepBySeed(seed), false)
	}
	for what, c := range images {
		names, err := c.List("db/snap")
		require.NoError(t, err, what)
		require.Empty(t, names, what)
		names, err = c.Folders("db/snap")
		require.NoError(t, err, what)
		require.Empty(t, names, what)
		names, err = c.List("db")
		require.NoError(t, err, what)
		require.Equal(t, []string{"moved"}, names, what)
	}
}
