package engine_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

func openDir(t *testing.T, dir string, c *clock) *engine.DB {
	t.Helper()
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1, Now: c.Now})
	require.NoError(t, err)
	return db
}

// TestDisk_Reopen: every kind of write survives Close and Open with the
// same items, revisions and expiries, and revisions go on from there.
func TestDisk_Reopen(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	db := openDir(t, dir, c)
	_, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	_, err = db.Set("ttl", "x", &engine.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	_, err = db.Set("short", "x", &engine.SetOptions{TTL: time.Second})
	require.NoError(t, err)
	_, err = db.Patch("j", `{"a":1}`)
	require.NoError(t, err)
	_, err = db.Patch("j", `{"b":2}`)
	require.NoError(t, err)
	_, _, err = db.Increment("n", 41)
	require.NoError(t, err)
	require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
		if _, err := tx.Increment("n", 1); err != nil {
			return err
		}
		if _, err := tx.Set("b", "2", nil); err != nil {
			return err
		}
		return tx.Delete("a")
	})))
	_, err = db.Set("a", "again", nil)
	require.NoError(t, err)
	require.Error(t, errOf(db.Update(func(tx *engine.Tx) error {
		_, _ = tx.Set("rolled back", "x", nil)
		return fmt.Errorf("no")
	})))
	c.Advance(2 * time.Second)
	require.Equal(t, 1, engine.Sweep(db))
	want, rev := all(t, db), db.Revision()
	require.NoError(t, db.Close())

	db = openDir(t, dir, c)
	require.Equal(t, rev, db.Revision())
	require.Equal(t, want, all(t, db))
	it, err := db.Set("c", "3", nil)
	require.NoError(t, err)
	require.Equal(t, rev+1, it.Revision)
	require.NoError(t, db.Close())

	db = openDir(t, dir, c)
	defer db.Close()
	require.Equal(t, rev+1, db.Revision())
	got, err := db.Get("n")
	require.NoError(t, err)
	require.Equal(t, "42", got.Value)
}

func TestDisk_Locked(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir, newClock())
	_, err := engine.Open(dir, nil)
	require.ErrorIs(t, err, vfs.ErrLocked)
	require.NoError(t, db.Close())
	db = openDir(t, dir, newClock())
	require.NoError(t, db.Close())
}

// TestDisk_ConcurrentWriters: every acknowledged write of 64 concurrent
// writers is there after reopening, and the log grouped their fsyncs.
func TestDisk_ConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	db := openDir(t, dir, newClock())
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := db.Set(fmt.Sprintf("w%02d:%02d", w, i), "v", nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, db.Close())
	db = openDir(t, dir, newClock())
	defer db.Close()
	require.Len(t, all(t, db), 64*20)
	require.Equal(t, int64(64*20), db.Revision())
}

// TestDisk_Checkpoint: explicit and background checkpoints keep the log
// small while writers go on, and Open restores exactly what was there.
func TestDisk_Checkpoint(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	// The log keeps what the history of changes holds (50 events here)
	// for subscribers to resume from after a restart.
	opts := &engine.Options{SweepInterval: -1, Now: c.Now, SegmentSize: 4 << 10, CheckpointBytes: 32 << 10, HistoryEvents: 50}
	db, err := engine.Open(dir, opts)
	require.NoError(t, err)
	value := strings.Repeat("v", 200)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				if _, err := db.Set(fmt.Sprintf("w%d:%03d", w, i%300), value, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	_, err = db.Set("ttl", "x", &engine.SetOptions{TTL: time.Minute})
	require.NoError(t, err)
	_, _, err = db.Increment("n", 7)
	require.NoError(t, err)
	require.NoError(t, db.Checkpoint())
	st := db.Stats()
	require.Greater(t, st.Checkpoints, int64(1), "background checkpoints ran")
	// 4000 writes of ~220 bytes logged ~900 KB; what is left is what the
	// last checkpoint did not cover, about a segment, and the history's
	// 50 events, about 11 KB, and the rest of their first segment.
	require.Less(t, st.LogBytes, int64(24<<10))
	want, rev := all(t, db), db.Revision()
	require.NoError(t, db.Close())

	db, err = engine.Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, rev, db.Revision())
	require.Equal(t, want, all(t, db))
	c.Advance(2 * time.Minute)
	require.Equal(t, 1, engine.Sweep(db), "a restored TTL still expires")
	_, err = db.Get("ttl")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.NoError(t, db.Close())
	require.ErrorIs(t, db.Checkpoint(), engine.ErrClosed)

	mem, err := engine.Open("", nil)
	require.NoError(t, err)
	require.NoError(t, mem.Checkpoint(), "in memory there is nothing to do")
	require.NoError(t, mem.Close())
}

// TestDisk_LargeTransaction: a transaction whose log record would be over
// the log's limit (70 values of 1 MiB, the default MaxValueSize) is refused
// whole, and what was committed before it is still there after a reopen.
func TestDisk_LargeTransaction(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	db := openDir(t, dir, c)
	_, err := db.Set("before", "1", nil)
	require.NoError(t, err)
	big := strings.Repeat("v", engine.DefaultMaxValueSize)
	_, err = db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 70; i++ {
			if _, err := tx.Set(fmt.Sprintf("big:%02d", i), big, nil); err != nil {
				return err
			}
		}
		return nil
	})
	require.ErrorIs(t, err, engine.ErrTooLarge)
	_, err = db.Get("big:00")
	require.ErrorIs(t, err, engine.ErrNotFound, "a refused transaction changes nothing")
	// One value of the largest size, with the largest key, always fits.
	_, err = db.Set(strings.Repeat("k", engine.DefaultMaxKeySize), big, nil)
	require.NoError(t, err)
	_, err = db.Set("after", "2", nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db = openDir(t, dir, c)
	defer db.Close()
	for _, k := range []string{"before", strings.Repeat("k", engine.DefaultMaxKeySize), "after"} {
		_, err := db.Get(k)
		require.NoError(t, err, "%.10s... after reopening", k)
	}
	_, err = db.Get("big:00")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

// TestDisk_SyncLatency: every fsync of the log is timed in Stats.
func TestDisk_SyncLatency(t *testing.T) {
	db, err := engine.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer db.Close()
	for i := 0; i < 20; i++ {
		_, err := db.Set(fmt.Sprintf("k%d", i), "v", nil)
		require.NoError(t, err)
	}
	st := db.Stats()
	require.GreaterOrEqual(t, st.Syncs, int64(20), "each Set waits for its own fsync")
	require.Len(t, st.SyncLatency.Counts, len(st.SyncLatency.Bounds)+1)
	var n int64
	for _, c := range st.SyncLatency.Counts {
		n += c
	}
	require.Equal(t, st.Syncs, n)
	require.Positive(t, st.SyncLatency.Sum)
}

// TestDisk_SweepOfLongKeysFitsTheLog expires 300 keys of 250 KiB each
// at once: 73 MiB of keys, more than one log record takes (64 MiB).
// The sweeps split them, and every key goes, on disk and after a reopen.
func TestDisk_SweepOfLongKeysFitsTheLog(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	o := &engine.Options{Now: c.Now, SweepInterval: -1, MaxKeySize: 256 << 10}
	db, err := engine.Open(dir, o)
	require.NoError(t, err)
	const keys = 300
	key := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("k", 250<<10-3) }
	for i := range keys {
		_, err := db.Set(key(i), "v", &engine.SetOptions{TTL: time.Second})
		require.NoError(t, err)
	}
	c.Advance(2 * time.Second)
	swept, sweeps := 0, 0
	for n := engine.Sweep(db); n > 0; n = engine.Sweep(db) {
		swept += n
		sweeps++
	}
	require.Equal(t, keys, swept)
	require.Greater(t, sweeps, 1)
	require.Equal(t, int64(0), db.Stats().Keys)
	rev := db.Revision()
	require.NoError(t, db.Close())

	db, err = engine.Open(dir, o)
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, rev, db.Revision())
	require.Equal(t, int64(0), db.Stats().Keys)
}

// TestDisk_SweepOfKeysAtTheLogsLimit: a sweep's keys stay within its
// bound with the last one counted, so that a key as long as MaxKeySize
// allows, where that is near the log's record limit, does not make a
// record past it after keys that nearly fill the bound (every later
// sweep would fail the same way, and no key would ever expire).
func TestDisk_SweepOfKeysAtTheLogsLimit(t *testing.T) {
	c := newClock()
	o := &engine.Options{Now: c.Now, SweepInterval: -1, MaxKeySize: 60 << 20, MaxValueSize: 1,
		FS: vfs.NewMemFS(), Sync: engine.SyncNever, CheckpointBytes: -1} // the log's limit: 64 MiB
	db, err := engine.Open("d", o)
	require.NoError(t, err)
	defer db.Close()
	for _, k := range []string{"a" + strings.Repeat("k", 8<<20-2), "b" + strings.Repeat("k", 60<<20-1), "c"} {
		_, err := db.Set(k, "v", &engine.SetOptions{TTL: time.Second})
		require.NoError(t, err)
	}
	c.Advance(2 * time.Second)
	for range 3 {
		engine.Sweep(db)
	}
	require.Equal(t, int64(0), db.Stats().Keys)
	require.Equal(t, int64(3), db.Stats().Expired)
}

// TestDisk_FilesPrivate: the folders and files a store makes, and those
// a restore makes from a backup, are its user's alone (0700 and 0600),
// as a backup file is: a database may hold secrets.
func TestDisk_FilesPrivate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permissions")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "new", "db")
	db, err := engine.Open(dir, &engine.Options{SweepInterval: -1})
	require.NoError(t, err)
	_, err = db.Set("secret", "v", nil)
	require.NoError(t, err)
	require.NoError(t, db.Checkpoint())
	var buf bytes.Buffer
	_, err = db.Backup(&buf)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = engine.RestoreDir(&buf, filepath.Join(root, "restored"), nil)
	require.NoError(t, err)
	n := 0
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		require.Zero(t, st.Mode().Perm()&0o077, "%s is %v", p, st.Mode().Perm())
		n++
		return nil
	}))
	require.Greater(t, n, 8)
}
