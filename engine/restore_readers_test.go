package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livekv/livekv/engine"
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
