package engine_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// gateFS is a file system whose next Sync, once armed, waits until the test
// lets it go, and then returns what the test says: a disk that is slow, or
// failing, exactly when the test wants it to be.
type gateFS struct {
	vfs.FS
	mu      sync.Mutex
	armed   bool
	reached chan struct{} // closed when the armed Sync has begun
	release chan error    // the armed Sync returns what is sent here
}

func newGateFS(fs vfs.FS) *gateFS { return &gateFS{FS: fs} }

// arm makes the next Sync wait until a value is sent on g.release. A test
// that ends early lets it go, so that Close does not wait for it forever.
func (g *gateFS) arm(t *testing.T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
	g.reached = make(chan struct{})
	release := make(chan error, 1)
	g.release = release
	t.Cleanup(func() {
		select {
		case release <- nil:
		default:
		}
	})
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	return g.wrap(f, err)
}

func (g *gateFS) OpenAppend(name string) (vfs.File, error) {
	f, err := g.FS.OpenAppend(name)
	return g.wrap(f, err)
}

func (g *gateFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	vfs.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	g := f.g
	g.mu.Lock()
	armed, reached, release := g.armed, g.reached, g.release
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(reached)
		if err := <-release; err != nil {
			return err
		}
	}
	return f.File.Sync()
}

// pendingCase is one caller that reads a write still waiting for its fsync.
type pendingCase struct {
	name string
	// write is the pending write, made while the fsync is held.
	write func(db *engine.DB) error
	// read runs while it is pending; its result is checked by check once
	// the fsync has returned.
	read  func(db *engine.DB, rev0 int64) error
	check func(t *testing.T, err error)
}

func pendingCases() []pendingCase {
	isErr := func(want error) func(t *testing.T, err error) {
		return func(t *testing.T, err error) { require.ErrorIs(t, err, want) }
	}
	return []pendingCase{
		{
			name:  "CompareAndSwap",
			write: func(db *engine.DB) error { _, err := db.Set("k", "v1", nil); return err },
			read: func(db *engine.DB, rev0 int64) error {
				_, err := db.CompareAndSwap("k", rev0, "x", nil)
				return err
			},
			check: isErr(engine.ErrConflict),
		},
		{
			name:  "PutIfAbsent",
			write: func(db *engine.DB) error { _, err := db.Set("new", "v1", nil); return err },
			read: func(db *engine.DB, rev0 int64) error {
				_, err := db.PutIfAbsent("new", "x", nil)
				return err
			},
			check: isErr(engine.ErrConflict),
		},
		{
			name:  "Delete",
			write: func(db *engine.DB) error { _, err := db.Delete("k"); return err },
			read:  func(db *engine.DB, _ int64) error { _, err := db.Delete("k"); return err },
			check: isErr(engine.ErrNotFound),
		},
		{
			name:  "Increment",
			write: func(db *engine.DB) error { _, err := db.Set("k", "not a number", nil); return err },
			read: func(db *engine.DB, rev0 int64) error {
				_, _, err := db.Increment("k", 1)
				return err
			},
			check: isErr(engine.ErrNotInteger),
		},
		{
			name:  "Update that only reads",
			write: func(db *engine.DB) error { _, err := db.Set("k", "v1", nil); return err },
			read: func(db *engine.DB, rev0 int64) error {
				return errOf(db.Update(func(tx *engine.Tx) error {
					it, err := tx.Get("k")
					if err != nil {
						return err
					}
					if it.Value != "v1" {
						return errors.New("read " + it.Value)
					}
					return nil
				}))
			},
			check: func(t *testing.T, err error) { require.NoError(t, err) },
		},
		{
			name:  "Update that only scans",
			write: func(db *engine.DB) error { _, err := db.Set("k2", "v1", nil); return err },
			read: func(db *engine.DB, rev0 int64) error {
				return errOf(db.Update(func(tx *engine.Tx) error {
					n := 0
					for _, err := range enginetest.Items(tx.Range("", "", nil)) {
						if err != nil {
							return err
						}
						n++
					}
					if n != 2 {
						return errors.New("scanned a store without the pending key")
					}
					return nil
				}))
			},
			check: func(t *testing.T, err error) { require.NoError(t, err) },
		},
	}
}

// openGated opens a DB on a gated in-memory disk with "k" = "v0" durable.
func openGated(t *testing.T) (*engine.DB, *gateFS, int64) {
	t.Helper()
	g := newGateFS(vfs.NewMemFS())
	db, err := engine.Open("db", &engine.Options{FS: g, SweepInterval: -1, CheckpointBytes: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	it, err := db.Set("k", "v0", nil)
	require.NoError(t, err)
	return db, g, it.Revision
}

// TestDB_PendingWrite_TeachesNothing holds one write's fsync and checks that
// no other caller learns of that write, by a value, a conflict or a
// not-found, before it is durable: each waits, and answers once it is.
func TestDB_PendingWrite_TeachesNothing(t *testing.T) {
	for _, c := range pendingCases() {
		t.Run(c.name, func(t *testing.T) {
			db, g, rev0 := openGated(t)

			g.arm(t)
			wrote := make(chan error, 1)
			go func() { wrote <- c.write(db) }()
			<-g.reached

			read := make(chan error, 1)
			go func() { read <- c.read(db, rev0) }()
			select {
			case err := <-read:
				t.Fatalf("answered %v while the write it read waits for its fsync", err)
			case <-time.After(50 * time.Millisecond):
			}
			it, err := db.Get("k")
			require.NoError(t, err)
			require.Equal(t, "v0", it.Value, "Get shows a write that is not durable")

			g.release <- nil
			require.NoError(t, <-wrote)
			c.check(t, <-read)
		})
	}
}

// TestDB_PendingWrite_FailedSync checks that a caller that read a write
// whose fsync then fails is told of the failure, not of what it read.
func TestDB_PendingWrite_FailedSync(t *testing.T) {
	db, g, rev0 := openGated(t)
	g.arm(t)
	wrote := make(chan error, 1)
	go func() { _, err := db.Set("k", "v1", nil); wrote <- err }()
	<-g.reached

	read := make(chan error, 1)
	go func() { _, err := db.CompareAndSwap("k", rev0, "x", nil); read <- err }()
	time.Sleep(20 * time.Millisecond) // let it read the pending write, if it is going to

	require.NoError(t, db.Err())
	disk := errors.New("disk on fire")
	g.release <- disk
	require.ErrorIs(t, <-wrote, disk)
	require.ErrorIs(t, db.Err(), disk, "the DB says it refuses writes")
	err := <-read
	require.Error(t, err)
	require.NotErrorIs(t, err, engine.ErrConflict, "a conflict with a write that never became durable")
	it, err := db.Get("k")
	require.NoError(t, err)
	require.Equal(t, "v0", it.Value)
	require.ErrorIs(t, db.Close(), disk)
	require.ErrorIs(t, db.Err(), engine.ErrClosed)
}

// TestDB_DurableReads_DoNotWait checks that a write transaction that reads
// only durable state does not wait for another caller's pending fsync.
func TestDB_DurableReads_DoNotWait(t *testing.T) {
	db, g, _ := openGated(t)
	_, err := db.Set("other", "x", nil)
	require.NoError(t, err)
	g.arm(t)
	wrote := make(chan error, 1)
	go func() { _, err := db.Set("k", "v1", nil); wrote <- err }()
	<-g.reached

	_, err = db.PutIfAbsent("other", "y", nil)
	require.ErrorIs(t, err, engine.ErrConflict)
	require.ErrorIs(t, errOf(db.Delete("missing")), engine.ErrNotFound)

	g.release <- nil
	require.NoError(t, <-wrote)
}
