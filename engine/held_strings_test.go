package engine_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// heldStrings keeps strings the engine handed out, each beside a copy made
// when it was handed out.
type heldStrings struct {
	got, want []string
	from      []string // where each came from, for the failure message
}

func (h *heldStrings) hold(from string, s ...string) {
	for _, x := range s {
		h.got = append(h.got, x)
		h.want = append(h.want, strings.Clone(x))
		h.from = append(h.from, from)
	}
}

func (h *heldStrings) item(from string, it engine.Item) { h.hold(from, it.Key, it.Value) }

// check fails the test for every held string that no longer reads as it
// did when it was handed out.
func (h *heldStrings) check(t *testing.T, when string) {
	t.Helper()
	bad := 0
	for i := range h.got {
		if h.got[i] != h.want[i] {
			if bad < 5 {
				t.Errorf("%s: a string from %s changed: %q, was %q", when, h.from[i], h.got[i], h.want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d held strings changed", when, bad, len(h.got))
	}
}

// TestHeldStrings_NeverChange: the keys and values a caller gets (from Get,
// Range and Prefix, a transaction's reads, Subscription.Initial, events,
// and the items writes return) are the caller's for good. While they are
// held, keys are overwritten with values of the same length and of other
// lengths, deleted, expired, incremented and patched; checkpoints rewrite
// the snapshot and drop log segments, the change history drops old events,
// old versions are released once no snapshot needs them, the collector
// runs; then the DB is closed and reopened from disk, and all of it goes on
// over the recovered values. Every held string must read as it did.
//
// Values live in chunks that compactions empty (small chunks here, so
// that they do, several times a round); a chunk must never be written
// over while a string may point into it, and this is the test that
// catches one that is. (Checked by making visible.store copy a new value
// over the old one's bytes when their lengths match: the test then fails
// in its first round.)
func TestHeldStrings_NeverChange(t *testing.T) {
	const keys = 500
	dir := t.TempDir()
	// Chunks of 2 KiB hold values up to 128 bytes and compact once 32
	// KiB in them are dead: the writes below take several compactions.
	opts := engine.WithChunkSize(&engine.Options{
		Sync:            engine.SyncNever,
		CheckpointBytes: 32 << 10, // background checkpoints too
		SegmentSize:     16 << 10,
		HistoryEvents:   256,
		SweepInterval:   5 * time.Millisecond,
	}, 2<<10)
	r := rand.New(rand.NewPCG(19, 19))
	value := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	key := func() string { return fmt.Sprintf("k:%04d", r.IntN(keys)) }
	var h heldStrings

	db, err := engine.Open(dir, opts)
	require.NoError(t, err)
	for i := 0; i < keys; i++ {
		_, err := db.Set(fmt.Sprintf("k:%04d", i), value(32), nil)
		require.NoError(t, err)
	}

	for gen := 0; gen < 2; gen++ { // the second over values recovered from disk
		sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{Initial: true, Buffer: 1 << 14})
		require.NoError(t, err)
		require.NotEmpty(t, sub.Initial)
		for _, it := range sub.Initial {
			h.item("Subscription.Initial", it)
		}
		events := 0
		for round := 0; round < 6; round++ {
			when := fmt.Sprintf("generation %d, round %d", gen, round)
			// Reads.
			for i := 0; i < 100; i++ {
				it, err := db.Get(key())
				if err == nil {
					h.item("Get", it)
				} else {
					require.ErrorIs(t, err, engine.ErrNotFound)
				}
			}
			for it, err := range enginetest.Items(db.Range(key(), "", &engine.RangeOptions{Limit: 100})) {
				require.NoError(t, err)
				h.item("Range", it)
			}
			for it, err := range enginetest.Items(db.Prefix(fmt.Sprintf("k:0%d", r.IntN(5)), nil)) {
				require.NoError(t, err)
				h.item("Prefix", it)
			}

			// A snapshot held open across the writes keeps the versions
			// they replace; once it ends they are released.
			inView, endView, viewDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			viewKey := key()
			go func() {
				viewDone <- db.View(func(tx *engine.Tx) error {
					close(inView)
					<-endView
					if it, err := tx.Get(viewKey); err == nil {
						h.item("Tx.Get", it)
					}
					for it, err := range enginetest.Items(tx.Range(viewKey, "", &engine.RangeOptions{Limit: 50})) {
						if err != nil {
							return err
						}
						h.item("Tx.Range", it)
					}
					return nil
				})
			}()
			<-inView

			// Writes.
			for i := 0; i < 600; i++ {
				k := key()
				switch op := r.IntN(10); {
				case op < 4: // the same length as the others: a chunk reused in place would show
					it, err := db.Set(k, value(32), nil)
					require.NoError(t, err)
					h.item("Set", it)
				case op < 6:
					_, err := db.Set(k, value(1+r.IntN(200)), nil)
					require.NoError(t, err)
				case op < 7:
					if _, err := db.Delete(k); err != nil {
						require.ErrorIs(t, err, engine.ErrNotFound)
					}
				case op < 8:
					_, err := db.Set(k, value(32), &engine.SetOptions{TTL: time.Millisecond})
					require.NoError(t, err)
				case op < 9:
					_, _, err := db.Increment(fmt.Sprintf("n:%02d", r.IntN(20)), int64(r.IntN(1000)))
					require.NoError(t, err)
				default:
					if it, err := db.Patch(k, value(4)); err == nil {
						h.item("Patch", it)
					}
				}
			}
			for i := 0; i < 20; i++ {
				if it, err := db.Get(fmt.Sprintf("n:%02d", i)); err == nil {
					h.item("Get of a counter", it)
				}
			}
			close(endView)
			require.NoError(t, <-viewDone)

			// Events, up to the last write.
			last := db.Revision()
			deadline := time.After(10 * time.Second)
			for seen := int64(0); seen < last; {
				select {
				case ev, ok := <-sub.Events():
					require.True(t, ok, "subscription ended: %v", sub.Err())
					h.hold("an event", ev.Key, ev.Value)
					seen = ev.Revision
					events++
				case <-deadline:
					t.Fatalf("%s: no event for revision %d in 10s", when, last)
				}
			}

			require.NoError(t, db.Checkpoint())
			runtime.GC()
			h.check(t, when)
		}
		require.Positive(t, events)
		require.Positive(t, engine.Compactions(db), "generation %d: no compaction of the value chunks", gen)
		require.NoError(t, sub.Close())
		require.NoError(t, db.Close())
		runtime.GC()
		h.check(t, fmt.Sprintf("generation %d, after Close", gen))
		db, err = engine.Open(dir, opts)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	h.check(t, "at the end")
	sources := map[string]int{}
	for _, f := range h.from {
		sources[f]++
	}
	for _, f := range []string{"Subscription.Initial", "Get", "Range", "Prefix", "Tx.Get", "Tx.Range",
		"Set", "Patch", "Get of a counter", "an event"} {
		require.Positive(t, sources[f], "no string held from %s", f)
	}
}
