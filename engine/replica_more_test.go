package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

func openSim(t *testing.T, o *engine.Options) (*engine.DB, *engine.Replica, *raftSim) {
	t.Helper()
	sim := newRaftSim()
	var opts engine.Options
	if o != nil {
		opts = *o
	}
	opts.Replicator = sim
	db, ctl, err := engine.OpenReplica(&opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		sim.close()
		require.NoError(t, db.Close())
	})
	return db, ctl, sim
}

// waitPending waits until the sim holds n records.
func waitPending(t *testing.T, sim *raftSim, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		sim.mu.Lock()
		defer sim.mu.Unlock()
		return len(sim.pending) == n
	}, 5*time.Second, time.Millisecond)
}

// TestReplica_NoDirtyReads: a speculative write is invisible to reads, and
// a transaction that read it and wrote nothing answers only once it is
// committed, or fails if it is abandoned.
func TestReplica_NoDirtyReads(t *testing.T) {
	for _, commit := range []bool{true, false} {
		db, ctl, sim := openSim(t, nil)
		set := make(chan error, 1)
		go func() { _, err := db.Set("k", "v", nil); set <- err }()
		waitPending(t, sim, 1)

		_, err := db.Get("k")
		require.ErrorIs(t, err, engine.ErrNotFound, "a speculative write is not visible")
		require.Zero(t, db.Revision())

		cas := make(chan error, 1)
		go func() { _, err := db.CompareAndSwap("k", 999, "w", nil); cas <- err }()
		select {
		case err := <-cas:
			t.Fatalf("a CAS that read a speculative write answered before it committed: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if commit {
			sim.commit(t, 1, ctl)
			require.NoError(t, <-set)
			require.ErrorIs(t, <-cas, engine.ErrConflict)
			it, err := db.Get("k")
			require.NoError(t, err)
			require.Equal(t, "v", it.Value)
		} else {
			sim.lose(t, ctl)
			require.ErrorIs(t, <-set, errNotCommitted)
			require.ErrorIs(t, <-cas, errNotCommitted)
			_, err := db.Get("k")
			require.ErrorIs(t, err, engine.ErrNotFound)
			// The next commit takes the abandoned revision.
			go func() { _, err := db.Set("k", "again", nil); set <- err }()
			waitPending(t, sim, 1)
			sim.commit(t, 1, ctl)
			require.NoError(t, <-set)
			require.Equal(t, int64(1), db.Revision())
		}
	}
}

// TestReplica_ApplyCommitted: a follower takes the next revision only,
// and none while speculative commits wait.
func TestReplica_ApplyCommitted(t *testing.T) {
	db, ctl, sim := openSim(t, nil)
	tx := func(rev int64, key string) *wal.Tx {
		return &wal.Tx{Revision: rev, Time: time.Now().UnixNano(), Writes: []wal.Write{{Kind: wal.KindPut, Key: key, Value: "x", Created: true}}}
	}
	require.ErrorIs(t, ctl.ApplyCommitted(tx(2, "a")), engine.ErrOutOfOrder)
	require.ErrorIs(t, ctl.ApplyCommitted(&wal.Tx{Revision: 1}), wal.ErrCorrupt)
	require.NoError(t, ctl.ApplyCommitted(tx(1, "a")))
	require.ErrorIs(t, ctl.ApplyCommitted(tx(1, "a")), engine.ErrOutOfOrder)
	it, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, int64(1), it.Revision)

	set := make(chan error, 1)
	go func() { _, err := db.Set("b", "y", nil); set <- err }()
	waitPending(t, sim, 1)
	require.ErrorIs(t, ctl.ApplyCommitted(tx(2, "c")), engine.ErrOutOfOrder, "a speculative commit waits")
	sim.lose(t, ctl)
	require.ErrorIs(t, <-set, errNotCommitted)
	require.NoError(t, ctl.ApplyCommitted(tx(2, "c")))
	require.Equal(t, int64(2), db.Revision())

	require.NoError(t, db.Close())
	require.ErrorIs(t, ctl.ApplyCommitted(tx(3, "d")), engine.ErrClosed)
	require.ErrorIs(t, ctl.Restore(bytes.NewReader(nil)), engine.ErrClosed)
	_, err = ctl.Snapshot()
	require.ErrorIs(t, err, engine.ErrClosed)
}

// TestReplica_Options: a Replicator goes with OpenReplica only.
func TestReplica_Options(t *testing.T) {
	_, err := engine.Open("", &engine.Options{Replicator: refuse{}})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, _, err = engine.OpenReplica(&engine.Options{})
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
	_, _, err = engine.OpenReplica(nil)
	require.ErrorIs(t, err, engine.ErrInvalidOptions)
}

// TestReplica_Restore: a follower restored from the leader's snapshot has
// the leader's state byte for byte, goes on from the next revision, and
// its subscriptions end with ErrCompacted; a damaged stream changes
// nothing.
func TestReplica_Restore(t *testing.T) {
	c := newClock()
	leader, lc, sim := openSim(t, &engine.Options{Now: c.Now})
	write := func(db *engine.DB, sim *raftSim, ctl *engine.Replica, key, value string, ttl time.Duration) {
		t.Helper()
		done := make(chan error, 1)
		go func() { _, err := db.Set(key, value, &engine.SetOptions{TTL: ttl}); done <- err }()
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
	}
	for i, k := range []string{"a", "b", "c", "b"} {
		write(leader, sim, lc, k, k+"1", time.Duration(i)*time.Hour)
	}
	snap, err := lc.Snapshot()
	require.NoError(t, err)
	write(leader, sim, lc, "d", "after", 0) // not in the snapshot
	var buf bytes.Buffer
	require.NoError(t, snap.Write(&buf))
	require.Equal(t, int64(4), snap.Revision())
	snap.Close()
	snap.Close()
	require.ErrorIs(t, snap.Write(&buf), engine.ErrClosed)

	follower, fc, fsim := openSim(t, &engine.Options{Now: c.Now})
	write(follower, fsim, fc, "old", "gone", 0)
	write(follower, fsim, fc, "z", "gone", time.Minute)
	sub, err := follower.Subscribe([]string{"*"}, nil)
	require.NoError(t, err)
	before := follower.Stats()

	// Damage: nothing changes.
	b := buf.Bytes()
	require.ErrorIs(t, fc.Restore(bytes.NewReader(b[:len(b)-3])), wal.ErrCorrupt)
	require.Equal(t, before.Keys, follower.Stats().Keys)
	it, err := follower.Get("old")
	require.NoError(t, err)
	require.Equal(t, "gone", it.Value)

	require.NoError(t, fc.Restore(bytes.NewReader(b)))
	_, ok := <-sub.Events()
	for ok {
		_, ok = <-sub.Events()
	}
	var ce *pubsub.CompactedError
	require.ErrorAs(t, sub.Err(), &ce)
	require.True(t, errors.Is(sub.Err(), pubsub.ErrCompacted))
	require.Equal(t, int64(5), ce.Oldest)

	require.Equal(t, int64(4), follower.Revision())
	_, err = follower.Get("old")
	require.ErrorIs(t, err, engine.ErrNotFound)
	var got bytes.Buffer
	_, err = follower.Backup(&got)
	require.NoError(t, err)
	require.Equal(t, b, got.Bytes())
	require.Equal(t, int64(3), follower.Stats().Keys)

	// It goes on from the next revision, and a new subscription from
	// before the snapshot is compacted.
	_, err = follower.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: 1})
	require.ErrorIs(t, err, pubsub.ErrCompacted)
	sub2, err := follower.Subscribe([]string{"*"}, &engine.SubscribeOptions{FromRevision: 4})
	require.NoError(t, err)
	require.NoError(t, fc.ApplyCommitted(&wal.Tx{Revision: 5, Time: time.Now().UnixNano(), Writes: []wal.Write{{Kind: wal.KindPut, Key: "d", Value: "after", Created: true}}}))
	ev := <-sub2.Events()
	require.Equal(t, int64(5), ev.Revision)
	require.Equal(t, "d", ev.Key)
	sub2.Close()

	// The expiry set was rebuilt: b and c, with a TTL, expire by a
	// sweep, and nothing else.
	c.Advance(10 * time.Hour)
	swept := make(chan int, 1)
	go func() { n, _, _ := fc.Sweep(); swept <- n }()
	waitPending(t, fsim, 1)
	fsim.commit(t, 1, fc)
	require.Equal(t, 2, <-swept)
	require.Equal(t, int64(2), follower.Stats().Keys)
}

// TestReplica_SweepAndClock: the leader's Sweep goes through the log like
// a write; a replica's clock never runs below the newest commit time it
// applied, so expiry times do not go back on a change of leader.
func TestReplica_SweepAndClock(t *testing.T) {
	c := newClock()
	db, ctl, sim := openSim(t, &engine.Options{Now: c.Now})
	done := make(chan error, 1)
	go func() { _, err := db.Set("t", "v", &engine.SetOptions{TTL: time.Second}); done <- err }()
	waitPending(t, sim, 1)
	sim.commit(t, 1, ctl)
	require.NoError(t, <-done)
	c.Advance(2 * time.Second)
	swept := make(chan int, 1)
	go func() { n, _, _ := ctl.Sweep(); swept <- n }()
	waitPending(t, sim, 1)
	sim.mu.Lock()
	require.Equal(t, wal.KindExpire, sim.pending[0].Writes[0].Kind)
	sim.mu.Unlock()
	sim.commit(t, 1, ctl)
	require.Equal(t, 1, <-swept)
	require.Zero(t, db.Stats().Keys)

	// A commit from a leader whose clock is an hour ahead.
	ahead := c.Now().Add(time.Hour).UnixNano()
	require.NoError(t, ctl.ApplyCommitted(&wal.Tx{Revision: 3, Time: ahead, Writes: []wal.Write{{Kind: wal.KindPut, Key: "x", Value: "1", Created: true}}}))
	go func() { _, err := db.Set("y", "2", &engine.SetOptions{TTL: time.Minute}); done <- err }()
	waitPending(t, sim, 1)
	sim.mu.Lock()
	require.GreaterOrEqual(t, sim.pending[0].Time, ahead)
	require.Equal(t, sim.pending[0].Time+int64(time.Minute), sim.pending[0].Writes[0].Expires)
	sim.mu.Unlock()
	sim.commit(t, 1, ctl)
	require.NoError(t, <-done)
}

// TestReplica_AbandonTail: a tail of speculative commits that create,
// delete, recreate and change the expiry of keys rolls back to exactly
// the published state: the same backup bytes, key count and expiries.
func TestReplica_AbandonTail(t *testing.T) {
	c := newClock()
	db, ctl, sim := openSim(t, &engine.Options{Now: c.Now})
	sub, err := db.Subscribe([]string{"*"}, nil)
	require.NoError(t, err)
	revs := collect(sub)
	run := func(ops []func() error, commit bool) []error {
		t.Helper()
		errs := make([]chan error, len(ops))
		for i, op := range ops {
			errs[i] = make(chan error, 1)
			go func() { errs[i] <- op() }()
			waitPending(t, sim, i+1) // one at a time, in order
		}
		if commit {
			sim.commit(t, len(ops), ctl)
		} else {
			sim.lose(t, ctl)
		}
		out := make([]error, len(ops))
		for i := range errs {
			out[i] = <-errs[i]
		}
		return out
	}
	ttl := func(d time.Duration) *engine.SetOptions { return &engine.SetOptions{TTL: d} }
	set := func(k, v string, o *engine.SetOptions) func() error {
		return func() error { _, err := db.Set(k, v, o); return err }
	}
	del := func(k string) func() error {
		return func() error { _, err := db.Delete(k); return err }
	}
	for _, err := range run([]func() error{
		set("a", "1", nil), set("b", "2", ttl(time.Hour)), set("c", "3", ttl(2*time.Hour)),
		set("d", "4", nil), del("d"), set("n", "10", nil),
	}, true) {
		require.NoError(t, err)
	}
	var before bytes.Buffer
	rev, err := db.Backup(&before)
	require.NoError(t, err)
	keys := db.Stats().Keys
	require.Equal(t, int64(4), keys)

	errs := run([]func() error{
		set("a", "1b", ttl(30*time.Minute)), del("b"), set("d", "recreated", nil), set("e", "new", ttl(time.Minute)),
		set("c", "no ttl", nil), del("e"), set("b", "back", nil), set("f", "new", nil),
		func() error { _, err := db.Patch("a", "+"); return err },
		func() error { _, _, err := db.Increment("n", 5); return err },
	}, false)
	for _, err := range errs {
		require.ErrorIs(t, err, errNotCommitted)
	}
	var after bytes.Buffer
	rev2, err := db.Backup(&after)
	require.NoError(t, err)
	require.Equal(t, rev, rev2)
	require.Equal(t, before.Bytes(), after.Bytes())
	require.Equal(t, keys, db.Stats().Keys)

	// The expiry set is back as it was: at 90 minutes b alone expires
	// (not a, whose 30-minute TTL was abandoned), at 3 hours c.
	sweep := func() int {
		t.Helper()
		got := make(chan int, 1)
		go func() { n, _, _ := ctl.Sweep(); got <- n }()
		select {
		case n := <-got:
			return n // nothing to expire: no commit
		case <-time.After(20 * time.Millisecond):
		}
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		return <-got
	}
	c.Advance(90 * time.Minute)
	require.Equal(t, 1, sweep())
	_, err = db.Get("b")
	require.ErrorIs(t, err, engine.ErrNotFound)
	it, err := db.Get("a")
	require.NoError(t, err)
	require.Equal(t, "1", it.Value)
	c.Advance(2 * time.Hour)
	require.Equal(t, 1, sweep())
	require.Equal(t, int64(2), db.Stats().Keys)

	// The abandoned revisions are taken again, and the subscriber saw
	// only what committed: revisions 1 to 8, two of them sweeps.
	require.NoError(t, run([]func() error{set("d", "again", nil)}, true)[0])
	it, err = db.Get("d")
	require.NoError(t, err)
	require.Equal(t, int64(9), it.Revision)
	require.Equal(t, int64(1), it.Version)
	sim.close()
	require.NoError(t, db.Close())
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}, <-revs)
}

// TestReplica_DeletionBuriedOnce: a deletion published while a write of
// the same key waits, then that write abandoned, queues the deletion's
// burial twice; the key's entry leaves the store once, and the keys
// created after it each have an entry of their own.
func TestReplica_DeletionBuriedOnce(t *testing.T) {
	db, ctl, sim := openSim(t, nil)
	write := func(op func() error) chan error {
		done := make(chan error, 1)
		go func() { done <- op() }()
		return done
	}
	set := func(k, v string) func() error {
		return func() error { _, err := db.Set(k, v, nil); return err }
	}
	first := write(set("k", "v1"))
	waitPending(t, sim, 1)
	sim.commit(t, 1, ctl)
	require.NoError(t, <-first)

	del := write(func() error { _, err := db.Delete("k"); return err })
	waitPending(t, sim, 1)
	again := write(set("k", "v2"))
	waitPending(t, sim, 2)
	sim.commit(t, 1, ctl) // the deletion is published, the write waits
	require.NoError(t, <-del)
	sim.lose(t, ctl) // the write is abandoned
	require.Error(t, <-again)

	for i := range 4 {
		k := fmt.Sprintf("new%d", i)
		done := write(set(k, "v:"+k))
		waitPending(t, sim, 1)
		sim.commit(t, 1, ctl)
		require.NoError(t, <-done)
		seq, err := db.Range("", "", nil) // buries, and flushes the new keys
		require.NoError(t, err)
		for _, err := range seq {
			require.NoError(t, err)
		}
	}
	for i := range 4 {
		k := fmt.Sprintf("new%d", i)
		it, err := db.Get(k)
		require.NoError(t, err, k)
		require.Equal(t, "v:"+k, it.Value)
	}
	_, err := db.Get("k")
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.Equal(t, int64(4), db.Stats().Keys)
}

// TestReplica_CloseWaitsForARestoreEnding: a Close that comes while a
// Restore still ends the old state's subscriptions returns once they
// have ended, with none of the old broker's goroutines left, as it
// does for its own.
func TestReplica_CloseWaitsForARestoreEnding(t *testing.T) {
	rep := &publishAtOnce{}
	db, ctl, err := engine.OpenReplica(&engine.Options{Replicator: rep})
	require.NoError(t, err)
	rep.ctl = ctl
	_, err = db.Set("a", "1", nil)
	require.NoError(t, err)
	var backup bytes.Buffer
	rev, err := db.Backup(&backup)
	require.NoError(t, err)

	// A subscription whose filter holds the old broker's regex lane.
	entered, release := make(chan struct{}), make(chan struct{})
	sub, err := db.Subscribe([]string{"/^k/"}, &engine.SubscribeOptions{Filter: func(key string) bool {
		if key == "k" {
			close(entered)
			<-release
		}
		return true
	}})
	require.NoError(t, err)
	defer sub.Close()
	_, err = db.Set("k", "v", nil)
	require.NoError(t, err)
	<-entered

	restored := make(chan error, 1)
	go func() { restored <- ctl.Restore(bytes.NewReader(backup.Bytes())) }()
	for db.Revision() != rev { // the new state is in: the Restore ends the old broker
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		closed <- err
		t.Errorf("Close returned while a Restore was ending the old state's subscriptions")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-closed)
	require.Empty(t, moduleGoroutines(), "goroutines left after Close")
	require.NoError(t, <-restored)
}

// moduleGoroutines returns the stacks of the goroutines that the
// packages of the module started, not their tests, once none is left or
// after a few seconds: a goroutine that a WaitGroup let go may still be
// on its way out when the wait returns.
func moduleGoroutines() []string {
	var left []string
	for range 5000 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = left[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "created by github.com/livekv/livekv/") && !strings.Contains(g, "created by github.com/livekv/livekv/engine_test.") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return left
}
