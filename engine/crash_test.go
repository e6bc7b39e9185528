package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// crashWorkload is a fixed sequence of steps, each of which commits one
// transaction (or, for a checkpoint, none): sets with and without TTL,
// patches, increments, deletes, multi-key transactions, an expiry sweep,
// enough bytes to rotate small segments, and two checkpoints.
func crashWorkload(c *clock) []func(db *engine.DB) error {
	var steps []func(db *engine.DB) error
	add := func(f func(db *engine.DB) error) { steps = append(steps, f) }
	ok := func(_ engine.Item, err error) error { return err }
	for b := 0; b < 12; b++ {
		add(func(db *engine.DB) error { return ok(db.Set(fmt.Sprintf("k%d", b%10), fmt.Sprintf("v%d", b), nil)) })
		add(func(db *engine.DB) error {
			return ok(db.Patch(fmt.Sprintf("j%d", b%3), fmt.Sprintf(`{"f%d":%d}`, b, b)))
		})
		add(func(db *engine.DB) error { _, _, err := db.Increment(fmt.Sprintf("n%d", b%4), int64(b)); return err })
		add(func(db *engine.DB) error {
			return errOf(db.Update(func(tx *engine.Tx) error {
				var o *engine.SetOptions
				if b%2 == 1 {
					o = &engine.SetOptions{TTL: time.Hour}
				}
				if _, err := tx.Set(fmt.Sprintf("t%02d", b), "temporary", o); err != nil {
					return err
				}
				if _, err := tx.Increment("n0", 1); err != nil {
					return err
				}
				return tx.Delete(fmt.Sprintf("k%d", b%10))
			}))
		})
		add(func(db *engine.DB) error {
			return ok(db.Set(fmt.Sprintf("big%d", b%2), strings.Repeat(fmt.Sprint(b), 300), nil))
		})
		add(func(db *engine.DB) error { return ok(db.PutIfAbsent(fmt.Sprintf("p%02d", b), "x", nil)) })
		if b == 4 || b == 8 {
			add(func(db *engine.DB) error { return db.Checkpoint() })
		}
		if b == 6 {
			add(func(db *engine.DB) error {
				c.Advance(2 * time.Hour)
				if engine.Sweep(db) == 0 {
					return errors.New("the sweep expired nothing")
				}
				return nil
			})
		}
	}
	return steps
}

func crashOptions(fs vfs.FS, c *clock) *engine.Options {
	return &engine.Options{FS: fs, Now: c.Now, SweepInterval: -1, SegmentSize: 1024, CheckpointBytes: -1}
}

// dumpAt returns every item as seen at the time at, which is not before
// the clock's: the items now, but those expired by then. (The clock is
// not moved there and back: the DB holds its expiry clock at the latest
// time a scan was judged at.)
func dumpAt(t *testing.T, db *engine.DB, c *clock, at int64) []engine.Item {
	t.Helper()
	require.GreaterOrEqual(t, at, c.ns.Load())
	var items []engine.Item
	for _, it := range all(t, db) {
		if it.ExpiresAt.IsZero() || it.ExpiresAt.UnixNano() > at {
			items = append(items, it)
		}
	}
	return items
}

// TestCrash_Points runs crashWorkload on a simulated disk and crashes it
// after the k-th mutating file operation, for every k until the workload
// completes, keeping none, half or all of the data written since the last
// sync, the rest cut off or read back as zeros, and then with each file
// keeping its own part of it, as a seed chooses. After each crash: Open
// succeeds; every acknowledged commit is there with its exact items; the
// state is the one after some commit of the workload (a prefix of the
// commit order); recovering twice gives the same; the recovered DB takes
// writes. Failing the k-th operation once,
// without a crash, must give the same guarantees after a reopen.
func TestCrash_Points(t *testing.T) { crashPoints(t, crashOptions) }

// TestCrash_PointsWithBackgroundCheckpoints is TestCrash_Points with the
// checkpoints that the log's growth starts in the background, every 512 bytes
// logged, beside the workload's own: a crash may stop one anywhere.
func TestCrash_PointsWithBackgroundCheckpoints(t *testing.T) {
	crashPoints(t, func(fs vfs.FS, c *clock) *engine.Options {
		o := crashOptions(fs, c)
		o.CheckpointBytes = 512
		return o
	})
}

// crashReference runs crashWorkload without a crash and returns a time
// past every expiry it sets (end), the state after each of its
// revisions, as seen at end, and its last revision.
func crashReference(t *testing.T, crashOptions func(vfs.FS, *clock) *engine.Options) (end int64, states map[int64][]engine.Item, total int64) {
	t.Helper()
	end = newClock().ns.Load() + int64(2*time.Hour)
	c := newClock()
	db, err := engine.Open("db", crashOptions(vfs.NewMemFS(), c))
	require.NoError(t, err)
	states = map[int64][]engine.Item{0: nil}
	for i, step := range crashWorkload(c) {
		require.NoError(t, step(db), "step %d", i)
		states[db.Revision()] = dumpAt(t, db, c, end)
	}
	total = db.Revision()
	t.Logf("the workload: %d revisions, %d checkpoints", total, db.Stats().Checkpoints)
	require.NoError(t, db.Close())
	return end, states, total
}

// crashRun runs crashWorkload on a new MemFS whose k-th mutating
// operation fails (and, with always, every one after it), then closes the
// DB; it returns the file system, the last revision acknowledged, the
// step's error that stopped the workload (nil if none did) and Close's.
func crashRun(t *testing.T, crashOptions func(vfs.FS, *clock) *engine.Options, k int, always bool) (fs *vfs.MemFS, acked int64, failed, closeErr error) {
	t.Helper()
	fs = vfs.NewMemFS()
	c := newClock()
	db, err := engine.Open("db", crashOptions(fs, c))
	require.NoError(t, err)
	fs.FailAt(k, always)
	for _, step := range crashWorkload(c) {
		if failed = step(db); failed != nil {
			break
		}
		acked = db.Revision()
	}
	return fs, acked, failed, db.Close()
}

// TestCrash_PointsSyncInterval is TestCrash_Points under SyncInterval,
// whose interval never comes in the test: a crash may take any commit
// acknowledged since the last fsync (a rotation's, a Close's), but
// leaves the state after some commit of the workload, never a hole or a
// mix; and after a Close that returned nil, every acknowledged commit is
// there.
func TestCrash_PointsSyncInterval(t *testing.T) {
	crashPointsFloor(t, func(fs vfs.FS, c *clock) *engine.Options {
		o := crashOptions(fs, c)
		o.Sync = engine.SyncInterval(time.Hour)
		return o
	}, func(acked int64, closeErr error) int64 {
		if closeErr != nil {
			return 0
		}
		return acked
	})
}

// crashPoints runs TestCrash_Points with the options options gives.
func crashPoints(t *testing.T, crashOptions func(vfs.FS, *clock) *engine.Options) {
	crashPointsFloor(t, crashOptions, func(acked int64, _ error) int64 { return acked })
}

// crashPointsFloor is crashPoints, but every crash image must hold the
// commits up to floor(acked, the error of the DB's Close) only.
func crashPointsFloor(t *testing.T, crashOptions func(vfs.FS, *clock) *engine.Options, floor func(acked int64, closeErr error) int64) {
	end, states, total := crashReference(t, crashOptions)

	check := func(what string, fs vfs.FS, acked int64) {
		t.Helper()
		c := newClock()
		c.ns.Store(end)
		db, err := engine.Open("db", crashOptions(fs, c))
		require.NoError(t, err, what)
		rev := db.Revision()
		require.GreaterOrEqual(t, rev, acked, "%s: acknowledged commits lost", what)
		require.LessOrEqual(t, rev, total, what)
		got := all(t, db)
		require.Equal(t, states[rev], got, "%s: the state is not the one after revision %d", what, rev)
		require.NoError(t, db.Close())

		db, err = engine.Open("db", crashOptions(fs, c))
		require.NoError(t, err, what)
		require.Equal(t, rev, db.Revision(), "%s: recovering twice", what)
		require.Equal(t, got, all(t, db), "%s: recovering twice", what)
		_, err = db.Set("after", "crash", nil)
		require.NoError(t, err, what)
		require.NoError(t, db.Close())

		db, err = engine.Open("db", crashOptions(fs, c))
		require.NoError(t, err, what)
		it, err := db.Get("after")
		require.NoError(t, err, what)
		require.Equal(t, rev+1, it.Revision, what)
		require.NoError(t, db.Close())
	}

	for _, always := range []bool{true, false} {
		most := 0 // the most operations a run made: background checkpoints make runs differ
		for k := 1; ; k++ {
			fs, acked, failed, closeErr := crashRun(t, crashOptions, k, always)
			durable := floor(acked, closeErr)
			ops := fs.Ops()
			most = max(most, ops)
			if failed != nil && !strings.Contains(failed.Error(), "expired nothing") {
				require.ErrorIs(t, failed, vfs.ErrInjected, "k=%d", k)
			}
			if always {
				for _, keep := range []float64{0, 0.5, 1} {
					check(fmt.Sprintf("crash at operation %d, keeping %v of unsynced data", k, keep), fs.Crash(keep), durable)
					check(fmt.Sprintf("crash at operation %d, keeping %v of unsynced data and zeros for the rest", k, keep), fs.CrashZeroFilled(keep), durable)
				}
				// Two seeds a crash point, others at each: every seed of
				// 1 to 2*k is tried by the k-th point.
				for seed := uint64(2*k - 1); seed <= uint64(2*k); seed++ {
					check(fmt.Sprintf("crash at operation %d, keeping what seed %d chose of each file's unsynced data", k, seed), fs.CrashEach(vfs.KeepBySeed(seed), seed%2 == 0), durable)
				}
			} else {
				if failed != nil && closeErr == nil {
					// A failed checkpoint leaves the log working.
					require.NotContains(t, failed.Error(), "log refuses", "k=%d", k)
				}
				fs.FailAt(0, false)
				check(fmt.Sprintf("operation %d failed once", k), fs, durable)
			}
			if failed == nil && ops < k {
				// No operation failed: k is past the last. (One that
				// did may be a background checkpoint's, which the
				// workload does not see: checked above all the same.)
				require.Equal(t, total, acked)
				require.Greater(t, most, 100, "the workload made too few file operations to be a test")
				break
			}
		}
	}
}

// TestCrash_DuringRecovery: a crash of the Open that recovers from a
// crash, at any of its file operations (it truncates a torn tail, drops
// damaged history, syncs), keeping none or all of what it had not
// synced, leaves a folder that the next Open recovers to the state after
// some commit of the workload, with every acknowledged commit in it.
// The first crashes come at every seventh operation of the workload,
// keeping half of what was not synced, the rest read back as zeros.
func TestCrash_DuringRecovery(t *testing.T) {
	end, states, _ := crashReference(t, crashOptions)
	recoveries := 0
	for k := 1; ; k += 7 {
		fs, acked, failed, _ := crashRun(t, crashOptions, k, true)
		if failed == nil {
			break
		}
		crashed := fs.CrashZeroFilled(0.5)
		for j := 1; ; j++ {
			during := crashed.Crash(1) // a copy, as the disk was
			during.FailAt(j, true)
			rc := newClock()
			rc.ns.Store(end)
			db, err := engine.Open("db", crashOptions(during, rc))
			if err == nil {
				require.NoError(t, db.Close())
				break // Open made fewer than j operations
			}
			recoveries++
			for _, keep := range []float64{0, 1} {
				what := fmt.Sprintf("workload crashed at operation %d, recovery at %d, keeping %v", k, j, keep)
				db, err := engine.Open("db", crashOptions(during.Crash(keep), rc))
				require.NoError(t, err, what)
				rev := db.Revision()
				require.GreaterOrEqual(t, rev, acked, "%s: acknowledged commits lost", what)
				require.Equal(t, states[rev], all(t, db), "%s: the state is not the one after revision %d", what, rev)
				require.NoError(t, db.Close())
			}
		}
	}
	require.Greater(t, recoveries, 20, "too few recoveries crashed to be a test")
	t.Logf("%d recoveries crashed", recoveries)
}

// crashImages returns what a crash of fs may leave: none, half or all of
// what was not synced, the rest cut off or read as zeros, and each file
// and the directory entries keeping their own part, as seeds choose.
func crashImages(fs *vfs.MemFS, k int) map[string]*vfs.MemFS {
	out := map[string]*vfs.MemFS{}
	for _, keep := range []float64{0, 0.5, 1} {
		out[fmt.Sprintf("keeping %v", keep)] = fs.Crash(keep)
		out[fmt.Sprintf("keeping %v, zeros for the rest", keep)] = fs.CrashZeroFilled(keep)
	}
	for seed := uint64(k); seed < uint64(k)+8; seed++ {
		out[fmt.Sprintf("keeping what seed %d chose", seed)] = fs.CrashEach(vfs.KeepBySeed(seed), seed%2 == 0)
	}
	return out
}

// TestCrash_FirstOpen: the first Open of a database makes its folders; a
// crash at any of its file operations, or at any of the first commit's,
// leaves a folder that Open opens, with the commit if it was
// acknowledged. Not syncing a new folder in its parent makes it fail.
func TestCrash_FirstOpen(t *testing.T) {
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		fs.FailAt(k, true)
		acked := false
		db, err := engine.Open("db", &engine.Options{FS: fs, SweepInterval: -1})
		if err == nil {
			_, err = db.Set("a", "1", nil)
			acked = err == nil
			db.Close()
		}
		for what, c := range crashImages(fs, k) {
			what = fmt.Sprintf("crash at operation %d, %s", k, what)
			db, err := engine.Open("db", &engine.Options{FS: c, SweepInterval: -1})
			require.NoError(t, err, what)
			if acked {
				_, err = db.Get("a")
				require.NoError(t, err, "%s: an acknowledged commit lost", what)
			}
			_, err = db.Set("b", "2", nil)
			require.NoError(t, err, what)
			require.NoError(t, db.Close())
		}
		if acked && fs.Ops() < k {
			break
		}
	}
}

// TestCrash_RestoreDir: a crash at any file operation of a RestoreDir
// into a new folder (whose parents are new too, or not) leaves the
// backup whole, if RestoreDir returned nil; else a folder that Open
// refuses as an unfinished restore, or opens empty, or, when the
// restore's last folder sync failed, whole; and that folder, unless
// whole, takes the restore again. Not syncing a new folder in its
// parent makes it fail.
func TestCrash_RestoreDir(t *testing.T) {
	src := open(t, nil)
	for i := range 50 {
		_, err := src.Set(fmt.Sprintf("k%02d", i), "v", nil)
		require.NoError(t, err)
	}
	var backup bytes.Buffer
	rev, err := src.Backup(&backup)
	require.NoError(t, err)
	want := all(t, src)
	for _, dir := range []string{"restored", "new/nested/restored"} {
		for k := 1; ; k++ {
			fs := vfs.NewMemFS()
			fs.FailAt(k, true)
			_, restoreErr := engine.RestoreDir(bytes.NewReader(backup.Bytes()), dir, &engine.Options{FS: fs})
			for what, c := range crashImages(fs, k) {
				what = fmt.Sprintf("%s: crash at operation %d, %s (RestoreDir: %v)", dir, k, what, restoreErr)
				db, err := engine.Open(dir, &engine.Options{FS: c.Crash(1), SweepInterval: -1}) // a copy: c is restored again
				whole := false
				switch {
				case restoreErr == nil:
					require.NoError(t, err, what)
					require.Equal(t, rev, db.Revision(), what)
				case err != nil:
					require.ErrorIs(t, err, wal.ErrUnfinishedRestore, what)
				default:
					whole = db.Revision() != 0
				}
				if err == nil {
					if db.Revision() != 0 {
						require.Equal(t, rev, db.Revision(), what)
						require.Equal(t, want, all(t, db), what)
					}
					require.NoError(t, db.Close())
				}
				if restoreErr != nil {
					again, err := engine.RestoreDir(bytes.NewReader(backup.Bytes()), dir, &engine.Options{FS: c})
					if whole {
						require.ErrorIs(t, err, engine.ErrNotEmpty, what)
						continue
					}
					require.NoError(t, err, "%s: restoring again", what)
					require.Equal(t, rev, again, what)
				}
			}
			if restoreErr == nil && fs.Ops() < k {
				break
			}
		}
	}
}
