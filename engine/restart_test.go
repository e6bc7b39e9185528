package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// readUntil reads sub's events until the one of revision rev, which must
// be a transaction of one event, or fails after a while.
func readUntil(t *testing.T, sub *engine.Subscription, rev int64) []pubsub.Event {
	t.Helper()
	var evs []pubsub.Event
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(evs) == 0 || evs[len(evs)-1].Revision < rev {
		ev, err := sub.Next(ctx)
		require.NoError(t, err, "waiting for revision %d, got through %d", rev, last(evs))
		evs = append(evs, ev)
	}
	return evs
}

func last(evs []pubsub.Event) int64 {
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Revision
}

// after returns the events of all with a revision above rev.
func after(all []pubsub.Event, rev int64) []pubsub.Event {
	for i, ev := range all {
		if ev.Revision > rev {
			return all[i:]
		}
	}
	return nil
}

func sameEvents(t *testing.T, want, got []pubsub.Event, msg string) {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: event counts", msg)
	for i := range want {
		w, g := want[i], got[i]
		require.True(t, w.Revision == g.Revision && w.Type == g.Type && w.Key == g.Key && w.Value == g.Value && w.Time.Equal(g.Time),
			"%s: event %d: got %+v, want %+v", msg, i, g, w)
	}
}

// TestSubscribe_ResumeAcrossReopen writes transactions of one to three keys
// while a subscription records every event, closes and reopens the
// database again and again (checkpoints drop log segments meanwhile), and
// after each reopen resumes from random revisions: after a revision from
// which the history still holds every later one, the events are exactly
// those the uninterrupted subscription got after it; after an older one,
// ErrCompacted with the oldest revision held.
func TestSubscribe_ResumeAcrossReopen(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			fs := vfs.NewMemFS()
			o := &engine.Options{FS: fs, SweepInterval: -1, SegmentSize: 2 << 10, CheckpointBytes: 8 << 10, HistoryEvents: 300}
			db, err := engine.Open("db", o)
			require.NoError(t, err)
			var all []pubsub.Event // every event, in order, across the reopens

			for round := range 6 {
				full, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: db.Revision(), Buffer: 4096})
				require.NoError(t, err)
				for i := range 100 + r.IntN(300) {
					require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
						for k := range 1 + r.IntN(3) {
							key := fmt.Sprintf("k%d", r.IntN(50))
							var err error
							switch r.IntN(4) {
							case 0:
								_, err = tx.Patch(key, fmt.Sprint(k))
							case 1:
								if err = tx.Delete(key); errors.Is(err, engine.ErrNotFound) {
									err = nil
								}
							default:
								_, err = tx.Set(key, fmt.Sprintf("r%di%dk%d", round, i, k), nil)
							}
							if err != nil {
								return err
							}
						}
						return nil
					})))
				}
				// The round ends with a transaction of one event, which
				// tells a reader it has everything.
				end, err := db.Set("end", fmt.Sprint(round), nil)
				require.NoError(t, err)
				rev := end.Revision
				all = append(all, readUntil(t, full, rev)...)
				require.NoError(t, full.Close())
				require.NoError(t, db.Close())

				db, err = engine.Open("db", o)
				require.NoError(t, err)
				require.Equal(t, rev, db.Revision())
				oldest := db.Stats().Subscriptions.Oldest // the oldest revision held
				require.Less(t, oldest, rev-100, "round %d: the history after reopen is too short", round)
				for range 5 {
					from := oldest - 1 + r.Int64N(rev-oldest+2) // resume after from
					sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{From: pubsub.Position{Revision: from + 1}, Buffer: 4096})
					require.NoError(t, err, "round %d: resume from %d (oldest %d)", round, from, oldest)
					var got []pubsub.Event
					if from < rev {
						got = readUntil(t, sub, rev)
					}
					sameEvents(t, after(all, from), got, fmt.Sprintf("round %d: resume from %d", round, from))
					require.NoError(t, sub.Close())
				}
				if oldest > 2 { // FromRevision 0 would ask for no resume at all
					_, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: oldest - 2})
					var ce *pubsub.CompactedError
					require.ErrorAs(t, err, &ce, "round %d: resume after %d, before the oldest %d", round, oldest-2, oldest)
					require.Equal(t, oldest, ce.Oldest)
				}
			}
			require.NoError(t, db.Close())
		})
	}
}

// TestDB_Close_DeliversEverything closes the database while writers write
// and a subscription with room for everything listens: once its events
// are read to their end, it has every transaction that committed, as the
// reopened database counts them.
func TestDB_Close_DeliversEverything(t *testing.T) {
	for round := range 10 {
		fs := vfs.NewMemFS()
		o := &engine.Options{FS: fs, SweepInterval: -1}
		db, err := engine.Open("db", o)
		require.NoError(t, err)
		sub, err := db.Subscribe([]string{"*"}, &engine.SubscribeOptions{Buffer: 1 << 16})
		require.NoError(t, err)
		done := make(chan struct{})
		for w := range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				for i := 0; ; i++ {
					if _, err := db.Set(fmt.Sprintf("w%d:%d", w, i), "v", nil); err != nil {
						if !errors.Is(err, engine.ErrClosed) {
							t.Errorf("writer %d: %v, want ErrClosed", w, err)
						}
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(1+round) * time.Millisecond)
		require.NoError(t, db.Close())
		for range 4 {
			<-done
		}
		var got int64
		for ev := range sub.Events() {
			require.Equal(t, got+1, ev.Revision, "round %d", round)
			got = ev.Revision
		}
		require.ErrorIs(t, sub.Err(), engine.ErrClosed)

		db, err = engine.Open("db", o)
		require.NoError(t, err)
		require.Equal(t, db.Revision(), got, "round %d: events delivered before Close ended the subscription", round)
		require.NoError(t, db.Close())
	}
}

// TestOpen_SnapshotIndexLoader: a snapshot of many batches of keys comes
// back whole (the index is loaded beside the reader), and one damaged
// near its end fails Open with ErrCorrupt and leaves no goroutine behind.
func TestOpen_SnapshotIndexLoader(t *testing.T) {
	fs := vfs.NewMemFS()
	o := &engine.Options{FS: fs, SweepInterval: -1, CheckpointBytes: -1}
	db, err := engine.Open("db", o)
	require.NoError(t, err)
	const n = 20_000
	for i := range n {
		_, err := db.Set(fmt.Sprintf("k%06d", i), fmt.Sprint("v", i), nil)
		require.NoError(t, err)
	}
	require.NoError(t, db.Checkpoint())
	_, err = db.Set("k000007", "after", nil) // a write after the snapshot looks its key up
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db, err = engine.Open("db", o)
	require.NoError(t, err)
	require.Equal(t, int64(n), db.Stats().Keys)
	for i := range n {
		it, err := db.Get(fmt.Sprintf("k%06d", i))
		require.NoError(t, err)
		want := fmt.Sprint("v", i)
		if i == 7 {
			want = "after"
		}
		require.Equal(t, want, it.Value)
	}
	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	count := 0
	for _, err := range seq {
		require.NoError(t, err)
		count++
	}
	require.Equal(t, n, count)
	require.NoError(t, db.Close())

	names, err := fs.List("db/snap")
	require.NoError(t, err)
	require.Len(t, names, 1)
	name := "db/snap/" + names[0]
	b, err := fs.ReadFile(name)
	require.NoError(t, err)
	b = append([]byte(nil), b...)
	b[len(b)-200] ^= 0x40 // in one of the last items, after many batches
	fs.WriteFile(name, b)
	before := goleak.IgnoreCurrent()
	_, err = engine.Open("db", o)
	require.ErrorIs(t, err, wal.ErrCorrupt)
	goleak.VerifyNone(t, before)
}
