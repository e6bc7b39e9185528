package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

// feedEvent is an event with the fields a resumed stream must repeat.
type feedEvent struct {
	Rev   int64
	Index int
	Type  pubsub.Type
	Key   string
	Value string
	Time  int64
}

func (e feedEvent) String() string {
	return fmt.Sprintf("%d.%d %v %s=%q @%d", e.Rev, e.Index, e.Type, e.Key, e.Value, e.Time)
}

func feedOf(ev pubsub.Event) feedEvent {
	return feedEvent{ev.Revision, ev.Index, ev.Type, ev.Key, ev.Value, ev.Time.UnixNano()}
}

// readFeed reads sub's events until it has taken every one up to
// revision rev (sub.Revision reaches it).
func readFeed(t *testing.T, sub *engine.Subscription, rev int64) []feedEvent {
	t.Helper()
	var evs []feedEvent
	deadline := time.Now().Add(10 * time.Second)
	for sub.Revision() < rev {
		require.True(t, time.Now().Before(deadline), "waiting for revision %d, at %d", rev, sub.Revision())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		ev, err := sub.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue // the position may move on with no event
		}
		require.NoError(t, err, "waiting for revision %d", rev)
		evs = append(evs, feedOf(ev))
	}
	return evs
}

// feedAfter returns the events of all after rev whose keys have prefix.
func feedAfter(all []feedEvent, rev int64, prefix string) []feedEvent {
	var out []feedEvent
	for _, ev := range all {
		if ev.Rev > rev && strings.HasPrefix(ev.Key, prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// TestExpiry_FeedAcrossReopen runs random writes with TTLs, a clock that
// moves on, sweeps, checkpoints and restarts, while one subscription
// records every event. After each restart, subscriptions resumed from
// random revisions (with a prefix too) get exactly the recorded events
// after them, expiries included, with the same index and time; and the
// state the events build is the state the store holds once every due
// key is swept.
func TestExpiry_FeedAcrossReopen(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			c := newClock()
			fs := vfs.NewMemFS()
			o := &engine.Options{FS: fs, SweepInterval: -1, Now: c.Now, SegmentSize: 1 << 10, CheckpointBytes: -1}
			if seed%2 == 0 { // a short history: checkpoints drop the log it no longer holds
				o.HistoryEvents = 5 + r.IntN(40)
			} else {
				o.HistoryBytes = 1000 + r.Int64N(3000)
			}
			db, err := engine.Open("db", o)
			require.NoError(t, err)
			defer func() { db.Close() }()
			var all []feedEvent
			full, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.After(0), Buffer: 1 << 16})
			require.NoError(t, err)
			key := func() string { return fmt.Sprintf("k%d", r.IntN(8)) }
			ttl := func() *engine.SetOptions {
				if r.IntN(2) == 0 {
					return nil
				}
				return &engine.SetOptions{TTL: time.Duration(1+r.IntN(4)) * 500 * time.Millisecond}
			}
			write := func(w interface {
				Set(string, string, *engine.SetOptions) (engine.Item, error)
				Patch(string, string) (engine.Item, error)
				CompareAndSwap(string, int64, string, *engine.SetOptions) (engine.Item, error)
				PutIfAbsent(string, string, *engine.SetOptions) (engine.Item, error)
			}, tx *engine.Tx) error {
				k := key()
				var err error
				switch r.IntN(6) {
				case 0, 1:
					_, err = w.Set(k, fmt.Sprint(r.IntN(100)), ttl())
				case 2:
					_, err = w.Patch(k, "p")
				case 3:
					var rev int64
					if tx != nil {
						if it, gerr := tx.Get(k); gerr == nil {
							rev = it.Revision
						}
					} else if it, gerr := db.Get(k); gerr == nil {
						rev = it.Revision
					}
					_, err = w.CompareAndSwap(k, rev, "c", ttl())
				case 4:
					_, err = w.PutIfAbsent(k, "a", ttl())
				default:
					if tx != nil {
						_, err = tx.Increment(k, 1)
					} else {
						_, _, err = db.Increment(k, 1)
					}
				}
				if errors.Is(err, engine.ErrConflict) || errors.Is(err, engine.ErrNotInteger) {
					err = nil
				}
				return err
			}
			check := func(step int) {
				rev := db.Revision()
				oldest := db.Stats().Subscriptions.Oldest
				for range 3 {
					from := oldest - 1 + r.Int64N(rev-oldest+2)
					prefix := []string{"", "k1", "k2"}[r.IntN(3)]
					pat := prefix + "*"
					if r.IntN(3) == 0 && prefix != "" { // the regex lane
						pat = "/^" + prefix + "$/"
					}
					sub, err := db.Subscribe([]string{pat}, &engine.SubscribeOptions{From: pubsub.After(from), Buffer: 1 + r.IntN(4)})
					require.NoError(t, err)
					want := feedAfter(all, from, prefix)
					got := readFeed(t, sub, rev)
					require.Equal(t, want, got, "step %d: resume after %d of %d (oldest %d), pattern %q", step, from, rev, oldest, pat)
					require.NoError(t, sub.Close())
				}
				if oldest > 2 {
					_, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: oldest - 2})
					var ce *engine.CompactedError
					require.ErrorAs(t, err, &ce, "step %d: resume after %d, oldest %d", step, oldest-2, oldest)
					require.Equal(t, oldest, ce.Oldest)
				}
				_, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: rev + 1})
				require.ErrorIs(t, err, engine.ErrRevisionAhead)
			}
			initial := func(step int) {
				prefix := []string{"", "k1", "k2"}[r.IntN(3)]
				sub, err := db.Subscribe([]string{prefix + "*"}, &engine.SubscribeOptions{Initial: true, Buffer: 1 << 16})
				require.NoError(t, err)
				defer sub.Close()
				var want []engine.Item
				for it, err := range enginetest.Items(db.Prefix(prefix, nil)) {
					require.NoError(t, err)
					want = append(want, it)
				}
				require.Equal(t, want, sub.Initial, "step %d", step)
				require.Equal(t, db.Revision(), sub.InitialRevision)
				from, err := db.Subscribe([]string{prefix + "*"}, &engine.SubscribeOptions{From: pubsub.After(sub.InitialRevision), Buffer: 1 << 16})
				require.NoError(t, err)
				defer from.Close()
				for range 3 {
					require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error { return write(tx, tx) })))
					engine.Sweep(db)
				}
				require.Equal(t, readFeed(t, from, db.Revision()), readFeed(t, sub, db.Revision()), "step %d", step)
			}
			for step := range 400 {
				switch op := r.IntN(100); {
				case op < 50:
					require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error { return write(tx, tx) })))
				case op < 60:
					require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
						for range 1 + r.IntN(3) {
							if err := write(tx, tx); err != nil {
								return err
							}
						}
						if r.IntN(3) == 0 {
							if err := tx.Delete(key()); err != nil && !errors.Is(err, engine.ErrNotFound) {
								return err
							}
						}
						return nil
					})))
				case op < 68:
					if err := errOf(db.Delete(key())); !errors.Is(err, engine.ErrNotFound) {
						require.NoError(t, err)
					}
				case op < 78:
					c.Advance(time.Duration(r.IntN(4)) * 500 * time.Millisecond)
				case op < 80:
					c.Advance(-time.Duration(r.IntN(4)) * 500 * time.Millisecond)
					initial(step)
				case op < 90:
					engine.Sweep(db)
				case op < 95:
					require.NoError(t, db.Checkpoint())
				default:
					all = append(all, readFeed(t, full, db.Revision())...)
					require.NoError(t, full.Close())
					rev := db.Revision()
					before := db.Stats().Subscriptions.Oldest
					require.NoError(t, db.Close())
					db, err = engine.Open("db", o)
					require.NoError(t, err)
					require.Equal(t, rev, db.Revision())
					require.LessOrEqual(t, db.Stats().Subscriptions.Oldest, before, "step %d: the history outlives a restart", step)
					check(step)
					full, err = db.Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.After(rev), Buffer: 1 << 16})
					require.NoError(t, err)
				}
			}
			for engine.Sweep(db) > 0 {
			}
			all = append(all, readFeed(t, full, db.Revision())...)
			check(-1)
			state := map[string]string{}
			seen := map[int64]bool{}
			for i, ev := range all {
				if i > 0 {
					p := all[i-1]
					require.True(t, p.Rev < ev.Rev && !seen[ev.Rev] || p.Rev == ev.Rev && p.Index+1 == ev.Index, "%v after %v", ev, p)
				}
				seen[ev.Rev] = true
				switch ev.Type {
				case pubsub.Delete: // maybe of a key set and deleted in one transaction
					delete(state, ev.Key)
				case pubsub.Expire:
					_, ok := state[ev.Key]
					require.True(t, ok, "%v of a key with no value", ev)
					delete(state, ev.Key)
				default:
					state[ev.Key] = ev.Value
				}
			}
			got := map[string]string{}
			for it, err := range enginetest.Items(db.Range("", "", nil)) {
				require.NoError(t, err)
				got[it.Key] = it.Value
			}
			require.Equal(t, got, state)
		})
	}
}
