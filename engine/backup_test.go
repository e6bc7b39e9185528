package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// stateAt is every item a View at the DB's newest revision sees, with that
// revision.
func stateAt(t testing.TB, db *engine.DB) (int64, []engine.Item) {
	t.Helper()
	var rev int64
	var items []engine.Item
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		rev = tx.Revision()
		for it, err := range enginetest.Items(tx.Range("", "", nil)) {
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return nil
	}))
	return rev, items
}

// TestBackup_UnderWriters: a backup taken while writers go on restores, by
// RestoreDir and Open, to exactly the state at its revision, which the
// test learns from a log of every committed transaction's writes.
func TestBackup_UnderWriters(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			dir := ""
			if disk {
				dir = t.TempDir()
			}
			db, err := engine.Open(dir, &engine.Options{SweepInterval: -1, Sync: engine.SyncNever})
			require.NoError(t, err)
			defer db.Close()

			// history[rev] is what revision rev wrote: a value or a deletion.
			type change struct {
				key, value string
				del        bool
			}
			var mu sync.Mutex
			history := map[int64][]change{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						var ch []change
						rev, err := db.Update(func(tx *engine.Tx) error {
							ch = ch[:0]
							for range 1 + r.IntN(3) {
								k := fmt.Sprintf("k%03d", r.IntN(200))
								if r.IntN(4) == 0 {
									if err := tx.Delete(k); err == nil {
										ch = append(ch, change{key: k, del: true})
									}
									continue
								}
								v := fmt.Sprintf("w%d-%d", w, i)
								if _, err := tx.Set(k, v, nil); err != nil {
									return err
								}
								ch = append(ch, change{key: k, value: v})
							}
							return nil
						})
						if err != nil {
							t.Errorf("update: %v", err)
							return
						}
						if rev != 0 {
							mu.Lock()
							history[rev] = append([]change(nil), ch...)
							mu.Unlock()
						}
					}
				}()
			}
			var backups []*bytes.Buffer
			var revs []int64
			for range 5 {
				time.Sleep(20 * time.Millisecond)
				var buf bytes.Buffer
				rev, err := db.Backup(&buf)
				require.NoError(t, err)
				backups, revs = append(backups, &buf), append(revs, rev)
			}
			close(stop)
			wg.Wait()
			require.Greater(t, revs[len(revs)-1], revs[0], "writers went on during the backups")

			for i, buf := range backups {
				want := map[string]string{}
				for rev := int64(1); rev <= revs[i]; rev++ {
					for _, c := range history[rev] {
						if c.del {
							delete(want, c.key)
						} else {
							want[c.key] = c.value
						}
					}
				}
				restored := filepath.Join(t.TempDir(), "restored")
				rev, err := engine.RestoreDir(bytes.NewReader(buf.Bytes()), restored, nil)
				require.NoError(t, err)
				require.Equal(t, revs[i], rev)
				db2, err := engine.Open(restored, &engine.Options{SweepInterval: -1})
				require.NoError(t, err)
				got := map[string]string{}
				rev2, items := stateAt(t, db2)
				require.Equal(t, rev, rev2)
				for _, it := range items {
					got[it.Key] = it.Value
				}
				require.Equal(t, want, got, "backup %d at revision %d", i, rev)
				// It goes on from the next revision.
				next, err := db2.Set("after", "x", nil)
				require.NoError(t, err)
				require.Equal(t, rev+1, next.Revision)
				require.NoError(t, db2.Close())
			}
		})
	}
}

// TestBackup_SameAsView: a backup restores item for item, revisions,
// versions and expiries included, to what a View at its revision sees.
func TestBackup_SameAsView(t *testing.T) {
	db := open(t, nil)
	for i := range 50 {
		var o *engine.SetOptions
		if i%3 == 0 {
			o = &engine.SetOptions{TTL: time.Hour}
		}
		_, err := db.Set(fmt.Sprintf("k%02d", i%20), fmt.Sprint(i), o)
		require.NoError(t, err)
	}
	require.NoError(t, errOf(db.Delete("k03")))
	var buf bytes.Buffer
	rev, err := db.Backup(&buf)
	require.NoError(t, err)
	wantRev, want := stateAt(t, db)
	require.Equal(t, wantRev, rev)

	dir := filepath.Join(t.TempDir(), "d")
	_, err = engine.RestoreDir(&buf, dir, nil)
	require.NoError(t, err)
	db2, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	defer db2.Close()
	gotRev, got := stateAt(t, db2)
	require.Equal(t, rev, gotRev)
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.Equal(t, want[i].Key, got[i].Key)
		require.Equal(t, want[i].Value, got[i].Value)
		require.Equal(t, want[i].Revision, got[i].Revision)
		require.Equal(t, want[i].CreateRevision, got[i].CreateRevision)
		require.Equal(t, want[i].Version, got[i].Version)
		require.True(t, want[i].ExpiresAt.Equal(got[i].ExpiresAt))
	}
}

// TestRestoreDir_Refuses: a folder that is not empty is refused, a
// damaged or failing stream leaves nothing Open would read, and a new
// database restores empty.
func TestRestoreDir_Refuses(t *testing.T) {
	db := open(t, nil)
	var empty bytes.Buffer
	rev, err := db.Backup(&empty)
	require.NoError(t, err)
	require.Zero(t, rev)
	_, err = db.Set("a", "1", nil)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = db.Backup(&buf)
	require.NoError(t, err)

	// An empty database restores to an empty folder that opens.
	dir := filepath.Join(t.TempDir(), "empty")
	rev, err = engine.RestoreDir(bytes.NewReader(empty.Bytes()), dir, nil)
	require.NoError(t, err)
	require.Zero(t, rev)
	db2, err := engine.Open(dir, nil)
	require.NoError(t, err)
	require.Zero(t, db2.Revision())
	require.NoError(t, db2.Close())

	// Not empty: a database is there.
	_, err = engine.RestoreDir(bytes.NewReader(buf.Bytes()), dir, nil)
	require.ErrorIs(t, err, engine.ErrNotEmpty)

	// Every cut of the stream is damage and leaves nothing behind.
	fs := vfs.NewMemFS()
	b := buf.Bytes()
	for cut := 0; cut < len(b); cut++ {
		_, err := engine.RestoreDir(bytes.NewReader(b[:cut]), "db", &engine.Options{FS: fs})
		require.ErrorIs(t, err, wal.ErrCorrupt, "cut at %d", cut)
		for _, d := range []string{"db", "db/wal", "db/snap"} {
			names, _ := fs.List(d)
			require.Empty(t, names, "cut at %d", cut)
		}
	}
	// A failing reader's error is returned.
	boom := errors.New("boom")
	_, err = engine.RestoreDir(&failingReader{b: b[:20], err: boom}, "db", &engine.Options{FS: fs})
	require.ErrorIs(t, err, boom)
	names, _ := fs.List("db/snap")
	require.Empty(t, names)

	rev, err = engine.RestoreDir(bytes.NewReader(b), "db", &engine.Options{FS: fs})
	require.NoError(t, err)
	db3, err := engine.Open("db", &engine.Options{FS: fs, SweepInterval: -1})
	require.NoError(t, err)
	defer db3.Close()
	it, err := db3.Get("a")
	require.NoError(t, err)
	require.Equal(t, "1", it.Value)
	require.Equal(t, rev, db3.Revision())

	_, err = engine.RestoreDir(bytes.NewReader(b), "", nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	require.NoError(t, db.Close())
	_, err = db.Backup(&buf)
	require.ErrorIs(t, err, engine.ErrClosed)
}

type failingReader struct {
	b   []byte
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestRestoreDir_Unfinished: a restore that stopped (a crash, a kill)
// leaves its folder with the snapshot cut short under its temporary
// name. Open refuses that folder, which holds no state: opening it as an
// empty database would serve nothing as if it were the backup. A restore
// run again takes the folder as empty, and finishes.
func TestRestoreDir_Unfinished(t *testing.T) {
	db := open(t, nil)
	for i := range 20 {
		_, err := db.Set(fmt.Sprintf("k%02d", i), "v", nil)
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	rev, err := db.Backup(&buf)
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "restored")
	for _, d := range []string{"wal", "snap"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "snap", "restore.snap.tmp"), buf.Bytes()[:buf.Len()/2], 0o644))
	_, err = engine.Open(dir, nil)
	require.ErrorIs(t, err, wal.ErrUnfinishedRestore)

	// Another restore running there holds the folder's lock: this one
	// waits its turn rather than write over the other's file.
	held, err := vfs.OSFS{}.Lock(filepath.Join(dir, "LOCK"))
	require.NoError(t, err)
	_, err = engine.RestoreDir(bytes.NewReader(buf.Bytes()), dir, nil)
	require.ErrorIs(t, err, vfs.ErrLocked)
	part, err := os.ReadFile(filepath.Join(dir, "snap", "restore.snap.tmp"))
	require.NoError(t, err)
	require.Len(t, part, buf.Len()/2, "the other restore's file was written over")
	require.NoError(t, held.Close())

	got, err := engine.RestoreDir(bytes.NewReader(buf.Bytes()), dir, nil)
	require.NoError(t, err)
	require.Equal(t, rev, got)
	db2, err := engine.Open(dir, nil)
	require.NoError(t, err)
	defer db2.Close()
	require.Equal(t, rev, db2.Revision())
	_, err = db2.Get("k19")
	require.NoError(t, err)
}

// crashingReader reads r until left bytes are read, then crashes the
// machine fs runs on (crashed) and fails: a restore that a power cut
// stops while it reads the backup.
type crashingReader struct {
	r       io.Reader
	left    int
	fs      *vfs.MemFS
	crashed *vfs.MemFS
}

func (c *crashingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.crashed = c.fs.Crash(1)
		return 0, errors.New("the machine crashed")
	}
	n, err := c.r.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// TestRestoreDir_MachineCrash: a machine crash while a restore reads its
// backup leaves the restore's file, its entry made durable first: Open
// refuses the folder rather than serve it as an empty database.
func TestRestoreDir_MachineCrash(t *testing.T) {
	db := open(t, nil)
	for i := range 2000 {
		_, err := db.Set(fmt.Sprintf("k%04d", i), "some value", nil)
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	_, err := db.Backup(&buf)
	require.NoError(t, err)
	for _, at := range []int{0, 1, buf.Len() / 2, buf.Len() - 1} {
		fs := vfs.NewMemFS()
		cr := &crashingReader{r: bytes.NewReader(buf.Bytes()), left: at, fs: fs}
		_, err = engine.RestoreDir(cr, "restored", &engine.Options{FS: fs})
		require.Error(t, err)
		require.NotNil(t, cr.crashed, "at %d", at)
		got, err := engine.Open("restored", &engine.Options{FS: cr.crashed, SweepInterval: -1})
		if err == nil {
			got.Close()
		}
		require.ErrorIs(t, err, wal.ErrUnfinishedRestore, "a crash after %d bytes", at)
	}
}

// TestOpen_SmallerLimits: a folder, or a backup, that holds a key or a
// value over the limits it is opened or restored with is refused with an
// *OverLimitError (ErrTooLarge), whether the item is in the log or in a
// snapshot, rather than served with a key that could be listed but not
// read or deleted. With limits as large, it opens.
func TestOpen_SmallerLimits(t *testing.T) {
	large := &engine.Options{SweepInterval: -1, MaxKeySize: 4096, MaxValueSize: 4 << 20}
	for _, c := range []struct {
		what, key, value string
		limit            int
	}{
		{"key", strings.Repeat("k", 2000), "v", engine.DefaultMaxKeySize},
		{"value", "k", strings.Repeat("v", 2<<20), engine.DefaultMaxValueSize},
	} {
		for _, checkpoint := range []bool{false, true} {
			what := fmt.Sprintf("a %s over the limit, checkpoint %v", c.what, checkpoint)
			dir := t.TempDir()
			db, err := engine.Open(dir, large)
			require.NoError(t, err)
			_, err = db.Set(c.key, c.value, nil)
			require.NoError(t, err)
			if checkpoint {
				require.NoError(t, db.Checkpoint())
			}
			var buf bytes.Buffer
			_, err = db.Backup(&buf)
			require.NoError(t, err)
			require.NoError(t, db.Close())

			_, err = engine.Open(dir, &engine.Options{SweepInterval: -1})
			var over *engine.OverLimitError
			require.ErrorAs(t, err, &over, what)
			require.ErrorIs(t, err, engine.ErrTooLarge, what)
			require.Equal(t, c.what, over.What, what)
			require.Equal(t, max(len(c.key), len(c.value)), over.Size, what)
			require.Equal(t, c.limit, over.Limit, what)
			db, err = engine.Open(dir, large)
			require.NoError(t, err, what)
			require.NoError(t, db.Close())

			restored := filepath.Join(t.TempDir(), "restored")
			_, err = engine.RestoreDir(bytes.NewReader(buf.Bytes()), restored, nil)
			require.ErrorAs(t, err, &over, what)
			_, err = os.Stat(restored)
			require.ErrorIs(t, err, os.ErrNotExist, what)
			_, err = engine.RestoreDir(bytes.NewReader(buf.Bytes()), restored, large)
			require.NoError(t, err, what)
		}
	}
}
