package engine_test

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

func TestDB_Update_OneRevision(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("c", "old", nil)
	require.NoError(t, err)
	_, err = db.Update(func(tx *engine.Tx) error {
		require.Equal(t, int64(2), tx.Revision())
		if _, err := tx.Set("a", "1", nil); err != nil {
			return err
		}
		if _, err := tx.Set("a", "2", nil); err != nil {
			return err
		}
		if _, err := tx.Increment("b", 3); err != nil {
			return err
		}
		if err := tx.Delete("c"); err != nil {
			return err
		}
		it, err := tx.Get("a")
		require.NoError(t, err)
		require.Equal(t, "2", it.Value, "a transaction reads its own writes")
		_, err = tx.Get("c")
		require.ErrorIs(t, err, engine.ErrNotFound)
		require.Equal(t, []string{"a", "b"}, collectKeys(t, enginetest.Items(tx.Range("", "", nil))))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(2), db.Revision())
	a, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, engine.Item{Key: "a", Value: "2", Revision: 2, CreateRevision: 2, Version: 1}, a)
	b, err := db.Get("b")
	require.NoError(t, err)
	require.Equal(t, int64(2), b.Revision)
	_, err = db.Get("c")
	require.ErrorIs(t, err, engine.ErrNotFound)
}

func TestDB_Update_RollbackOnError(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	boom := errors.New("boom")
	_, err = db.Update(func(tx *engine.Tx) error {
		_, _ = tx.Set("a", "2", nil)
		_, _ = tx.Set("new", "x", nil)
		_ = tx.Delete("a")
		for range enginetest.Items(tx.Range("", "", nil)) { // puts "new" into the ordered tree
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(1), db.Revision())
	it, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, "1", it.Value)
	_, err = db.Get("new")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Equal(t, []string{"a"}, collectKeys(t, enginetest.Items(db.Range("", "", nil))))
	require.Equal(t, int64(1), db.Stats().Keys)

	// The next transaction takes the revision the failed one did not.
	it, err = db.Set("a", "3", nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), it.Revision)
	require.Equal(t, int64(2), it.Version)
}

func TestDB_Update_RollbackOnPanic(t *testing.T) {
	db := open(t, nil)
	require.PanicsWithValue(t, "boom", func() {
		_, _ = db.Update(func(tx *engine.Tx) error {
			_, _ = tx.Set("a", "1", nil)
			panic("boom")
		})
	})
	_, err := db.Get("a")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Equal(t, int64(0), db.Revision())
	// The writer lock was released.
	_, err = db.Set("a", "1", nil)
	require.NoError(t, err)
}

// TestDB_Update_PanickingClock: a clock (Options.Now) that panics as a
// transaction begins lets its panic go on, and leaves the writer lock
// free. It was replaced by a nil-pointer panic, and every later write and
// Close blocked for ever.
func TestDB_Update_PanickingClock(t *testing.T) {
	var boom atomic.Bool
	db, err := engine.Open("", &engine.Options{SweepInterval: -1, Now: func() time.Time {
		if boom.Load() {
			panic("clock failure")
		}
		return time.Now()
	}})
	require.NoError(t, err)
	boom.Store(true)
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		_, _ = db.Update(func(tx *engine.Tx) error { return nil })
	}()
	boom.Store(false)
	require.Equal(t, "clock failure", panicked)
	require.True(t, setReturns(db), "Set blocked after the recovered panic: the writer lock was left held")
	require.Zero(t, db.Stats().Rollbacks, "no transaction began")
	require.NoError(t, db.Close())
}

// TestDB_Update_PanicInRangeLoop: a Range loop inside Update whose body
// panics lets the panic go on; the transaction's writes are taken back
// and the writer lock released.
func TestDB_Update_PanicInRangeLoop(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	require.PanicsWithValue(t, "boom", func() {
		_, _ = db.Update(func(tx *engine.Tx) error {
			_, _ = tx.Set("b", "2", nil)
			items, err := tx.Range("", "", nil)
			if err != nil {
				return err
			}
			for range items {
				_, _ = tx.Set("a", "3", nil)
				panic("boom")
			}
			return nil
		})
	})
	require.True(t, setReturns(db), "Set blocked after the recovered panic: the writer lock was left held")
	var keys []string
	for _, it := range all(t, db) {
		keys = append(keys, it.Key)
	}
	require.Equal(t, []string{"a", "k"}, keys, "b was taken back")
	it, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, "1", it.Value)
	require.Zero(t, db.Stats().Snapshots)
}

func TestDB_Update_FailedOpChangesNothing(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("s", "text", nil)
	require.NoError(t, err)
	_, err = db.Update(func(tx *engine.Tx) error {
		_, err := tx.Increment("s", 1)
		require.ErrorIs(t, err, engine.ErrNotInteger)
		_, err = tx.Set("ok", "1", nil)
		return err
	})
	require.NoError(t, err)
	it, err := db.Get("s")
	require.NoError(t, err)
	require.Equal(t, "text", it.Value)
}

func TestTx_UseAfterDone(t *testing.T) {
	db := open(t, nil)
	var kept *engine.Tx
	require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error { kept = tx; return nil })))
	_, err := kept.Set("a", "1", nil)
	require.ErrorIs(t, err, engine.ErrTxDone)
	_, err = kept.Get("a")
	require.ErrorIs(t, err, engine.ErrTxDone)
	require.NoError(t, db.View(func(tx *engine.Tx) error { kept = tx; return nil }))
	_, err = kept.Get("a")
	require.ErrorIs(t, err, engine.ErrTxDone)
	_, err = kept.Range("", "", nil)
	require.ErrorIs(t, err, engine.ErrTxDone)

	// An iterator taken inside the transaction and looped over after it
	// ended yields ErrTxDone alone.
	var items iter.Seq2[engine.Item, error]
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		var err error
		items, err = tx.Prefix("a", nil)
		return err
	}))
	n := 0
	for _, err := range items {
		n++
		require.ErrorIs(t, err, engine.ErrTxDone)
	}
	require.Equal(t, 1, n)
}

func TestDB_View_ReadOnlySnapshot(t *testing.T) {
	db := open(t, nil)
	_, err := db.Set("a", "1", nil)
	require.NoError(t, err)
	_, err = db.Set("b", "1", nil)
	require.NoError(t, err)
	err = db.View(func(tx *engine.Tx) error {
		_, err := tx.Set("x", "1", nil)
		require.ErrorIs(t, err, engine.ErrReadOnly)
		require.ErrorIs(t, tx.Delete("a"), engine.ErrReadOnly)
		_, err = tx.Increment("a", 1)
		require.ErrorIs(t, err, engine.ErrReadOnly)
		_, err = tx.Patch("a", "1")
		require.ErrorIs(t, err, engine.ErrReadOnly)

		// Writers go on; the view does not see them.
		_, err = db.Set("a", "2", nil)
		require.NoError(t, err)
		require.NoError(t, errOf(db.Delete("b")))
		_, err = db.Set("c", "1", nil)
		require.NoError(t, err)

		it, err := tx.Get("a")
		require.NoError(t, err)
		require.Equal(t, "1", it.Value)
		it, err = tx.Get("b")
		require.NoError(t, err)
		require.Equal(t, "1", it.Value)
		_, err = tx.Get("c")
		require.ErrorIs(t, err, engine.ErrNotFound)
		require.Equal(t, []string{"a", "b"}, collectKeys(t, enginetest.Items(tx.Range("", "", nil))))
		require.Equal(t, int64(2), tx.Revision())
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, collectKeys(t, enginetest.Items(db.Range("", "", nil))))
	require.Equal(t, int64(0), db.Stats().Snapshots)
}

func TestDB_Range_Options(t *testing.T) {
	db := open(t, nil)
	for _, k := range []string{"a", "b", "b\x00", "ba", "bb", "c", "d", "\xff", "\xff\xff"} {
		_, err := db.Set(k, "v:"+k, nil)
		require.NoError(t, err)
	}
	tests := []struct {
		name       string
		start, end string
		opts       *engine.RangeOptions
		want       []string
	}{
		{"all", "", "", nil, []string{"a", "b", "b\x00", "ba", "bb", "c", "d", "\xff", "\xff\xff"}},
		{"half open", "b", "c", nil, []string{"b", "b\x00", "ba", "bb"}},
		{"limit", "b", "", &engine.RangeOptions{Limit: 2}, []string{"b", "b\x00"}},
		{"reverse", "b", "c", &engine.RangeOptions{Reverse: true}, []string{"bb", "ba", "b\x00", "b"}},
		{"reverse unbounded limit", "", "", &engine.RangeOptions{Reverse: true, Limit: 3}, []string{"\xff\xff", "\xff", "d"}},
		{"reverse end between keys", "", "bab", &engine.RangeOptions{Reverse: true}, []string{"ba", "b\x00", "b", "a"}},
		{"continue after", engine.KeyAfter("b"), "c", nil, []string{"b\x00", "ba", "bb"}},
		{"empty", "c", "c", nil, []string{}},
		{"inverted", "d", "a", nil, []string{}},
		{"inverted reverse", "d", "a", &engine.RangeOptions{Reverse: true}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, collectKeys(t, enginetest.Items(db.Range(tt.start, tt.end, tt.opts))))
		})
	}
	require.Equal(t, []string{"b", "b\x00", "ba", "bb"}, collectKeys(t, enginetest.Items(db.Prefix("b", nil))))
	require.Equal(t, []string{"\xff", "\xff\xff"}, collectKeys(t, enginetest.Items(db.Prefix("\xff", nil))))
	require.Equal(t, []string{"bb", "ba"}, collectKeys(t, enginetest.Items(db.Prefix("b", &engine.RangeOptions{Reverse: true, Limit: 2}))))

	for it, err := range enginetest.Items(db.Range("a", "b", &engine.RangeOptions{KeysOnly: true})) {
		require.NoError(t, err)
		require.Equal(t, engine.Item{Key: "a", Revision: 1, CreateRevision: 1, Version: 1}, it)
	}
	for it, err := range enginetest.Items(db.Range("a", "b", nil)) {
		require.NoError(t, err)
		require.Equal(t, "v:a", it.Value)
	}
}

// TestDB_Range_BoundsOfAnyLength: a range's bounds may be longer than a
// key can be (KeyAfter of a key of MaxKeySize's largest, 2 GiB - 1, is 2
// GiB): they order against the keys whole, never cut to the length an
// entry holds for a key.
func TestDB_Range_BoundsOfAnyLength(t *testing.T) {
	if math.MaxInt == math.MaxInt32 {
		t.Skip("bounds of 2 GiB and more")
	}
	db := open(t, nil)
	for _, k := range []string{"b", "b\x00", "c"} {
		_, err := db.Set(k, "v:"+k, nil)
		require.NoError(t, err)
	}
	for _, n64 := range []int64{1 << 31, 1<<31 + 1, 1<<32 + 1} {
		n := int(n64) // 64-bit ints only: skipped above otherwise
		// "b" and zero bytes after it, never written: the memory of the
		// bound is not touched but for its first page.
		b := make([]byte, n)
		b[0] = 'b'
		bound := unsafe.String(&b[0], n)
		require.Equal(t, []string{"c"}, collectKeys(t, enginetest.Items(db.Range(bound, "", nil))), "from a bound of %d bytes", n)
		require.Equal(t, []string{"b", "b\x00"}, collectKeys(t, enginetest.Items(db.Range("", bound, nil))), "to a bound of %d bytes", n)
		require.Equal(t, []string{"b\x00", "b"}, collectKeys(t, enginetest.Items(db.Range("", bound, &engine.RangeOptions{Reverse: true}))), "down from a bound of %d bytes", n)
	}
}

func TestDB_Range_BreakClosesSnapshot(t *testing.T) {
	db := open(t, nil)
	for _, k := range []string{"a", "b", "c"} {
		_, err := db.Set(k, "v", nil)
		require.NoError(t, err)
	}
	for range enginetest.Items(db.Range("", "", nil)) {
		require.Equal(t, int64(1), db.Stats().Snapshots)
		break
	}
	require.Equal(t, int64(0), db.Stats().Snapshots)
}

// TestDB_Update_Revision: Update returns the revision its writes committed
// at, and 0 for a transaction that wrote nothing or failed.
func TestDB_Update_Revision(t *testing.T) {
	db := open(t, nil)
	var want int64
	rev, err := db.Update(func(tx *engine.Tx) error {
		want = tx.Revision()
		_, err := tx.Set("a", "1", nil)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, want, rev)
	require.Equal(t, db.Revision(), rev)

	rev, err = db.Update(func(tx *engine.Tx) error {
		_, err := tx.Get("a")
		return err
	})
	require.NoError(t, err)
	require.Zero(t, rev, "nothing written, no revision")

	rev, err = db.Update(func(tx *engine.Tx) error {
		if _, err := tx.Set("b", "1", nil); err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	require.Error(t, err)
	require.Zero(t, rev)
}

// TestTx_Now: a transaction's Now is the DB's clock when it began, for a
// write and a read, and a TTL counts from it.
func TestTx_Now(t *testing.T) {
	c := newClock()
	db := open(t, c)
	start := c.Now()
	_, err := db.Update(func(tx *engine.Tx) error {
		require.Equal(t, start, tx.Now())
		c.Advance(time.Hour) // the transaction keeps its time
		require.Equal(t, start, tx.Now())
		it, err := tx.Set("k", "v", &engine.SetOptions{TTL: time.Minute})
		require.Equal(t, time.Minute, it.ExpiresAt.Sub(tx.Now()))
		return err
	})
	require.NoError(t, err)
	c.Advance(-time.Hour + 30*time.Second)
	require.NoError(t, db.View(func(tx *engine.Tx) error {
		require.Equal(t, start.Add(30*time.Second), tx.Now())
		it, err := tx.Get("k")
		require.Equal(t, 30*time.Second, it.ExpiresAt.Sub(tx.Now()))
		return err
	}))
}

// A write transaction's Range loop shows every key as it was when the loop
// began, whatever its body writes, whichever batch of the scan a key is in;
// a loop begun after those writes shows them.
func TestTx_RangeShowsTheLoopsStart(t *testing.T) {
	db := open(t, nil)
	for i := range 100 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), "old", nil)
		require.NoError(t, err)
	}
	want := map[string]string{"k000": "before"} // as the loop must show it
	for i := 2; i < 100; i++ {
		want[fmt.Sprintf("k%03d", i)] = "old"
	}
	after := map[string]string{} // as a loop begun after the body's writes must
	for i := range 100 {
		if i != 50 {
			after[fmt.Sprintf("k%03d", i)] = "new"
		}
	}
	after["k050x"] = "new"

	_, err := db.Update(func(tx *engine.Tx) error {
		_, err := tx.Set("k000", "before", nil)
		require.NoError(t, err)
		require.NoError(t, tx.Delete("k001"))
		got := map[string]string{}
		for it, err := range enginetest.Items(tx.Range("", "", nil)) {
			require.NoError(t, err)
			if len(got) == 0 {
				for i := range 100 {
					_, err := tx.Set(fmt.Sprintf("k%03d", i), "new", nil)
					require.NoError(t, err)
				}
				require.NoError(t, tx.Delete("k050"))
				_, err := tx.Set("k050x", "new", nil)
				require.NoError(t, err)
				inner := map[string]string{}
				for it, err := range enginetest.Items(tx.Range("", "", nil)) {
					require.NoError(t, err)
					inner[it.Key] = it.Value
				}
				require.Equal(t, after, inner, "a loop begun after the writes")
			}
			got[it.Key] = it.Value
		}
		require.Equal(t, want, got, "the loop the writes were made in")
		again := map[string]string{}
		for it, err := range enginetest.Items(tx.Range("", "", nil)) {
			require.NoError(t, err)
			again[it.Key] = it.Value
		}
		require.Equal(t, after, again, "a loop begun after the first ended")
		return nil
	})
	require.NoError(t, err)
	committed := map[string]string{}
	for it, err := range enginetest.Items(db.Range("", "", nil)) {
		require.NoError(t, err)
		committed[it.Key] = it.Value
	}
	require.Equal(t, after, committed)
}
