package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// waitAsync runs WaitRevision in a goroutine; its result arrives on the
// channel.
func waitAsync(ctx context.Context, db *engine.DB, rev int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- db.WaitRevision(ctx, rev) }()
	return ch
}

// waitCtx bounds a test's waits, so that a waiter nothing wakes fails
// the test instead of hanging it.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireWaiting checks that a WaitRevision has not returned.
func requireWaiting(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("WaitRevision returned %v before its revision was visible", err)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestDB_WaitRevision_Wakes: each waiter returns when its revision is
// visible, no sooner, and then reads see the revision's writes.
func TestDB_WaitRevision_Wakes(t *testing.T) {
	db := open(t, nil)
	ctx := waitCtx(t)
	require.NoError(t, db.WaitRevision(ctx, 0), "revision 0 is always visible")

	const n = 5
	var wg sync.WaitGroup
	errs := make([]error, 3*n)
	for i := range errs {
		rev := int64(i/3 + 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.WaitRevision(ctx, rev); err != nil {
				errs[i] = err
				return
			}
			// Visible means readable.
			it, err := db.Get(fmt.Sprint("k", rev))
			if err != nil || it.Revision != rev {
				errs[i] = fmt.Errorf("after revision %d: %+v, %v", rev, it, err)
			}
		}()
	}
	last := waitAsync(ctx, db, n)
	requireWaiting(t, last)
	for rev := int64(1); rev <= n; rev++ {
		if rev == n {
			requireWaiting(t, last)
		}
		got, err := db.Set(fmt.Sprint("k", rev), "v", nil)
		require.NoError(t, err)
		require.Equal(t, rev, got.Revision)
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, <-last)
	require.NoError(t, ctx.Err(), "the waiters returned at their deadline, not when woken")
	// Already visible: nil at once, even with a context that ended.
	done, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, db.WaitRevision(done, n))
}

// TestDB_WaitRevision_Context: a waiter returns its context's error when
// the context ends first, and at once if it has ended already.
func TestDB_WaitRevision_Context(t *testing.T) {
	db := open(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := waitAsync(ctx, db, 1)
	requireWaiting(t, ch)
	cancel()
	require.ErrorIs(t, <-ch, context.Canceled)
	require.ErrorIs(t, db.WaitRevision(ctx, 1), context.Canceled)

	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, db.WaitRevision(short, 1), context.DeadlineExceeded)
}

// TestDB_WaitRevision_Close: Close ends every wait with ErrClosed, and a
// wait on a closed DB returns it at once, unless the revision is visible.
func TestDB_WaitRevision_Close(t *testing.T) {
	for _, dir := range []string{"memory", "disk"} {
		t.Run(dir, func(t *testing.T) {
			d := ""
			if dir == "disk" {
				d = t.TempDir()
			}
			db, err := engine.Open(d, &engine.Options{SweepInterval: -1})
			require.NoError(t, err)
			_, err = db.Set("a", "1", nil)
			require.NoError(t, err)
			ctx := waitCtx(t)
			chs := []<-chan error{waitAsync(ctx, db, 2), waitAsync(ctx, db, 100)}
			for _, ch := range chs {
				requireWaiting(t, ch)
			}
			require.NoError(t, db.Close())
			for _, ch := range chs {
				require.ErrorIs(t, <-ch, engine.ErrClosed)
			}
			require.ErrorIs(t, db.WaitRevision(ctx, 2), engine.ErrClosed)
			require.NoError(t, db.WaitRevision(ctx, 1))
		})
	}
}

// TestReplica_WaitRevision: on a replica a waiter wakes when a commit is
// published, not when it is executed, and when a follower applies one or
// restores a snapshot.
func TestReplica_WaitRevision(t *testing.T) {
	ctx := waitCtx(t)
	db, ctl, sim := openSim(t, nil)
	set := make(chan error, 1)
	go func() { _, err := db.Set("k", "v", nil); set <- err }()
	waitPending(t, sim, 1)
	ch := waitAsync(ctx, db, 1)
	requireWaiting(t, ch) // executed, speculative: not visible
	sim.commit(t, 1, ctl)
	require.NoError(t, <-ch)
	require.NoError(t, <-set)

	// A follower applying the leader's commit.
	fdb, fctl, _ := openSim(t, nil)
	ch = waitAsync(ctx, fdb, 1)
	requireWaiting(t, ch)
	sim.mu.Lock()
	tx := sim.log[0]
	sim.mu.Unlock()
	require.NoError(t, fctl.ApplyCommitted(tx))
	require.NoError(t, <-ch)

	// A restored snapshot.
	snap, err := ctl.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snap.Write(&buf))
	snap.Close()
	rdb, rctl, _ := openSim(t, nil)
	ch = waitAsync(ctx, rdb, 1)
	requireWaiting(t, ch)
	require.NoError(t, rctl.Restore(&buf))
	require.NoError(t, <-ch)
	require.NoError(t, ctx.Err(), "the waiters returned at their deadline, not when woken")
}

// TestDB_WaitRevision_Concurrent: many waiters and writers at once; every
// waiter returns, none early (run with -race).
func TestDB_WaitRevision_Concurrent(t *testing.T) {
	db := open(t, nil)
	const writers, writes, waiters = 4, 200, 16
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	total := int64(writers * writes)
	errc := make(chan error, writers+waiters)
	for w := range waiters {
		go func() {
			for rev := int64(w % 7); rev <= total; rev += 37 {
				if err := db.WaitRevision(ctx, rev); err != nil {
					errc <- err
					return
				}
				// Each write is a fresh key at a revision of its own:
				// woken at rev, a scan holds at least rev keys.
				seq, err := db.Range("", "", nil)
				if err != nil {
					errc <- err
					return
				}
				keys := int64(0)
				for _, err := range seq {
					if err != nil {
						errc <- err
						return
					}
					keys++
				}
				if keys < rev {
					errc <- fmt.Errorf("woken for revision %d with %d keys visible", rev, keys)
					return
				}
			}
			errc <- db.WaitRevision(ctx, total)
		}()
	}
	for w := range writers {
		go func() {
			for i := range writes {
				if _, err := db.Set(fmt.Sprintf("w%d:%d", w, i), "v", nil); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	var errs []error
	for range writers + waiters {
		errs = append(errs, <-errc)
	}
	require.NoError(t, errors.Join(errs...))
	require.NoError(t, ctx.Err(), "the waiters returned at their deadline, not when woken")
	require.Equal(t, total, db.Revision())
}
