package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestReplica_RestoreIsAtomicToReaders: readers that run while a Restore
// replaces the state see the old state or the new one, never a mix nor
// a key of neither: a Get finds every key that both states hold, with
// one of their values, and a Range or a View reads every key of one
// state, at that state's revision. A cluster node installing a snapshot
// keeps serving reads meanwhile, and a session's read of its own write
// must not miss it.
func TestReplica_RestoreIsAtomicToReaders(t *testing.T) {
	const keys = 3000
	// Two states of the same keys: every value "a" at one revision, every
	// value "b" at another.
	backup := func(value string, writes int) (*bytes.Buffer, int64) {
		src, err := engine.Open("", &engine.Options{SweepInterval: -1})
		require.NoError(t, err)
		defer func() { require.NoError(t, src.Close()) }()
		for range writes {
			for i := range keys {
				_, err := src.Set(fmt.Sprintf("k%05d", i), value, nil)
				require.NoError(t, err)
			}
		}
		var b bytes.Buffer
		rev, err := src.Backup(&b)
		require.NoError(t, err)
		return &b, rev
	}
	a, revA := backup("a", 1)
	b, revB := backup("b", 2)
	revOf := map[string]int64{"a": revA, "b": revB}

	db, ctl, _ := openSim(t, nil)
	require.NoError(t, ctl.Restore(bytes.NewReader(a.Bytes())))

	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(bad) < 10 {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
		stop.Store(true)
	}
	var gets, scans atomic.Int64
	wg.Add(3)
	go func() { // Get
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for !stop.Load() {
			k := fmt.Sprintf("k%05d", r.IntN(keys))
			it, err := db.Get(k)
			switch {
			case err != nil:
				fail("Get(%s): %v", k, err)
			case it.Revision > revOf[it.Value] || (it.Value != "a" && it.Value != "b"):
				fail("Get(%s): %q at revision %d", k, it.Value, it.Revision)
			}
			gets.Add(1)
		}
	}()
	check := func(how string, rev int64, items func(yield func(engine.Item, error) bool)) {
		n, first := 0, ""
		for it, err := range items {
			if err != nil {
				fail("%s: %v", how, err)
				return
			}
			if n == 0 {
				first = it.Value
			}
			if it.Value != first || it.Key != fmt.Sprintf("k%05d", n) {
				fail("%s: item %d is %s=%q, after values %q", how, n, it.Key, it.Value, first)
				return
			}
			n++
		}
		if n != keys {
			fail("%s: %d keys of %d", how, n, keys)
		}
		if rev != 0 && rev != revOf[first] {
			fail("%s: values %q at revision %d, not %d", how, first, rev, revOf[first])
		}
		scans.Add(1)
	}
	go func() { // Range
		defer wg.Done()
		for !stop.Load() {
			items, err := db.Range("", "", nil)
			if err != nil {
				fail("Range: %v", err)
				return
			}
			check("Range", 0, items)
		}
	}()
	go func() { // View
		defer wg.Done()
		for !stop.Load() {
			err := db.View(func(tx *engine.Tx) error {
				items, err := tx.Range("", "", nil)
				if err != nil {
					return err
				}
				check("View", tx.Revision(), items)
				return nil
			})
			if err != nil && !errors.Is(err, engine.ErrClosed) {
				fail("View: %v", err)
			}
		}
	}()
	for i := 0; i < 40 && !stop.Load(); i++ {
		src := a
		if i%2 == 0 {
			src = b
		}
		require.NoError(t, ctl.Restore(bytes.NewReader(src.Bytes())))
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d gets, %d scans", gets.Load(), scans.Load())
	require.Empty(t, bad, "readers saw a state that is neither")
}

// publishAtOnce is a replicator whose commits are durable and published
// as soon as their writer waits for them.
type publishAtOnce struct{ ctl *engine.Replica }

func (publishAtOnce) Append(*wal.Tx) error { return nil }
func (p *publishAtOnce) WaitDurable(rev int64) error {
	p.ctl.Publish(rev)
	return nil
}

// TestReplica_ViewsAcrossRestores: Restores of an old backup, each
// followed by writes, while views read a key twice. A view that began
// as a Restore ended must read the restored state at the restored
// revision: with the new state at the old, higher, revision, the writes
// after the Restore showed through it, and its second read of a key saw
// a write made after it began.
func TestReplica_ViewsAcrossRestores(t *testing.T) {
	rep := &publishAtOnce{}
	db, ctl, err := engine.OpenReplica(engine.WithChunks(&engine.Options{Replicator: rep, SweepInterval: -1}, 1<<10, 1<<10))
	require.NoError(t, err)
	rep.ctl = ctl
	defer func() { require.NoError(t, db.Close()) }()
	for i := range 200 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), "v0", nil)
		require.NoError(t, err)
	}
	var backup bytes.Buffer
	_, err = db.Backup(&backup)
	require.NoError(t, err)
	var stop atomic.Bool
	var wg sync.WaitGroup
	fail := make(chan string, 1)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprintf("k%03d", w)
			for !stop.Load() {
				_ = db.View(func(tx *engine.Tx) error {
					a, errA := tx.Get(k)
					time.Sleep(200 * time.Microsecond)
					b, errB := tx.Get(k)
					if a != b || (errA == nil) != (errB == nil) {
						select {
						case fail <- fmt.Sprintf("a view at revision %d read %s: %+v (%v), then %+v (%v)", tx.Revision(), k, a, errA, b, errB):
						default:
						}
					}
					return nil
				})
			}
		}()
	}
	defer wg.Wait()
	defer stop.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	rounds := 0
	for time.Now().Before(deadline) {
		select {
		case msg := <-fail:
			t.Fatalf("after %d restores: %s", rounds, msg)
		default:
		}
		require.NoError(t, ctl.Restore(bytes.NewReader(backup.Bytes())))
		rounds++
		for i := range 20 {
			_, err := db.Set(fmt.Sprintf("k%03d", i%3), fmt.Sprintf("v%d", i+1), nil)
			require.NoError(t, err)
		}
	}
	t.Logf("%d restores, no view saw a later write", rounds)
}
