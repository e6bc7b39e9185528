package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// TestCompaction_ReadersSeeWholeValues: while a writer deletes most keys
// and writes them again, so that compactions move the values that are
// left, readers (Get, Range, and views that read old versions) must only
// ever see a key's own, whole values, and a view the same value twice.
func TestCompaction_ReadersSeeWholeValues(t *testing.T) {
	db, err := engine.Open("", engine.WithChunkSize(&engine.Options{SweepInterval: -1, HistoryEvents: 1}, 1<<10))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 2000
	key := func(i int) string { return fmt.Sprintf("k%05d", i) }
	// A value names its key and round, and its length follows from them.
	value := func(k string, round int) string {
		s := fmt.Sprintf("%s|%d|", k, round)
		return s + strings.Repeat("x", 8+round%40)
	}
	wellFormed := func(k, v string) error {
		var round int
		if !strings.HasPrefix(v, k+"|") {
			return fmt.Errorf("%q holds %q", k, v)
		}
		if _, err := fmt.Sscanf(v[len(k)+1:], "%d|", &round); err != nil || v != value(k, round) {
			return fmt.Errorf("%q holds %q", k, v)
		}
		return nil
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	reader := func(read func() error) {
		defer wg.Done()
		for !stop.Load() {
			if err := read(); err != nil {
				errs <- err
				return
			}
		}
	}
	wg.Add(3)
	go reader(func() error {
		for i := 0; i < keys; i += 7 {
			it, err := db.Get(key(i))
			if err == nil {
				err = wellFormed(it.Key, it.Value)
			} else if err == engine.ErrNotFound {
				err = nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	go reader(func() error {
		for it, err := range enginetest.Items(db.Range(key(0), "", &engine.RangeOptions{Limit: 500})) {
			if err == nil {
				err = wellFormed(it.Key, it.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	go reader(func() error {
		return db.View(func(tx *engine.Tx) error {
			first := map[string]string{}
			for pass := 0; pass < 2; pass++ {
				for it, err := range enginetest.Items(tx.Range(key(0), "", &engine.RangeOptions{Limit: 300})) {
					if err == nil {
						err = wellFormed(it.Key, it.Value)
					}
					if err != nil {
						return err
					}
					if pass == 0 {
						first[it.Key] = it.Value
					} else if first[it.Key] != it.Value {
						return fmt.Errorf("a view read %q as %q, then as %q", it.Key, first[it.Key], it.Value)
					}
				}
			}
			return nil
		})
	})

	for round := 0; round < 40 && len(errs) == 0; round++ {
		for i := 0; i < keys; i++ {
			// Keys 0, 10, 20, ... keep their first values, which are left
			// alone in their chunks when the others go.
			if i%10 == 0 && round > 0 {
				continue
			}
			if round%2 == 1 {
				_, err := db.Delete(key(i))
				if err != nil {
					require.ErrorIs(t, err, engine.ErrNotFound)
				}
				continue
			}
			_, err := db.Set(key(i), value(key(i), round), nil)
			require.NoError(t, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Positive(t, engine.Compactions(db), engine.ArenaStats(db))
}

// TestCompaction_OnAFollower: a follower's commits come through
// ApplyCommitted, never through a write of its own, and its chunks must
// compact all the same (they once compacted only after a local write).
func TestCompaction_OnAFollower(t *testing.T) {
	o := engine.WithChunks(&engine.Options{SweepInterval: -1, HistoryEvents: 1}, 1<<10, 4<<10)
	leader, follower, _ := openReplicaPair(t, o, rand.New(rand.NewPCG(7, 7)))
	defer func() {
		require.NoError(t, leader.Close())
		require.NoError(t, follower.Close())
	}()
	// Keys 0, 10, 20, ... keep their first values; the others are
	// deleted and written again, leaving chunks mostly dead.
	for round := 0; round < 20; round++ {
		for i := 0; i < 1000; i++ {
			if i%10 == 0 && round > 0 {
				continue
			}
			k := fmt.Sprintf("k%04d", i)
			var err error
			if round%2 == 1 {
				_, err = leader.Delete(k)
			} else {
				_, err = leader.Set(k, fmt.Sprintf("%s|%d|%s", k, round, strings.Repeat("x", 20)), nil)
			}
			if err != nil && !errors.Is(err, engine.ErrNotFound) {
				require.ErrorIs(t, err, errNotCommitted) // the replicator abandoned it
			}
		}
	}
	require.Eventually(t, func() bool { return engine.Compactions(follower) > 0 }, 10*time.Second, time.Millisecond,
		"the follower never compacted: %s", engine.ArenaStats(follower))
	require.Eventually(t, func() bool { return !engine.Compacting(follower) }, 10*time.Second, time.Millisecond)
	require.NoError(t, engine.ArenaErr(follower))
	require.Equal(t, all(t, leader), all(t, follower))
}
