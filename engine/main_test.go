package engine_test

import (
	"flag"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/internal/leaktest"
	"github.com/stretchr/testify/require"
)

// kill9Main comes first: in the child process of a kill -9 test it runs
// the child and exits, with no tests and no leak check.
func TestMain(m *testing.M) {
	kill9Main()
	flag.Parse()
	// Tests poison the entries that are reclaimed; benchmarks time what
	// users run.
	if flag.Lookup("test.bench").Value.String() == "" {
		engine.PoisonReclaimed(true)
		engine.VisitIdleHeadsOften()
	}
	leaktest.Main(m)
}

// errOf is the error of a call that also returns a value, such as
// Delete's revision.
func errOf[T any](_ T, err error) error { return err }

// clock is a fake clock for TTL tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// open opens an in-memory DB with the fake clock and no background sweeper.
func open(t testing.TB, c *clock) *engine.DB {
	t.Helper()
	o := &engine.Options{SweepInterval: -1}
	if c != nil {
		o.Now = c.Now
	}
	db, err := engine.Open("", o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// all returns every item a full scan yields.
func all(t testing.TB, db *engine.DB) []engine.Item {
	t.Helper()
	var items []engine.Item
	for it, err := range enginetest.Items(db.Range("", "", nil)) {
		require.NoError(t, err)
		items = append(items, it)
	}
	return items
}

func runtimeGosched() { time.Sleep(time.Millisecond) }

// setReturns reports whether a Set returns within 2s: false when the
// writer lock was left held.
func setReturns(db *engine.DB) bool {
	done := make(chan struct{})
	go func() { _, _ = db.Set("k", "v", nil); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(2 * time.Second):
		return false
	}
}
