package cluster

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

var stores = flag.String("cluster.store", "bolt,wal", "raft log stores the tests that matter run against, comma-separated")

// testSegmentSize is the size of raft-wal's segment files in tests: small,
// so that they rotate.
const testSegmentSize = 8 << 10

// forEachStore runs f as a subtest for each log store -cluster.store
// names.
func forEachStore(t *testing.T, f func(t *testing.T, store LogStore)) {
	t.Helper()
	for _, s := range strings.Split(*stores, ",") {
		store := LogStore(strings.TrimSpace(s))
		if store == "" {
			t.Fatalf("-cluster.store %q names an empty store", *stores)
		}
		if _, err := (&Options{NodeID: "a", RaftAddr: "127.0.0.1:1", LogStore: store}).withDefaults(); err != nil {
			t.Fatalf("-cluster.store: %v", err)
		}
		t.Run(string(store), func(t *testing.T) { f(t, store) })
	}
}

// storeOpts are options for a node on store, with small raft-wal
// segments so that tests rotate them.
func storeOpts(store LogStore) *Options {
	return &Options{NodeID: "a", RaftAddr: "127.0.0.1:1", LogStore: store, walSegmentSize: 16 << 10}
}

func openTestStore(t *testing.T, dir string, store LogStore) logStore {
	t.Helper()
	o, err := storeOpts(store).withDefaults()
	require.NoError(t, err)
	s, err := openLogStore(dir, &o)
	require.NoError(t, err)
	return s
}

func storeLogs(t *testing.T, s logStore, from, to uint64, term uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("%d.%d:%0200d", i, term, i))})
	}
	require.NoError(t, s.StoreLogs(logs))
}

func requireLogs(t *testing.T, s logStore, first, last uint64, termOf func(i uint64) uint64) {
	t.Helper()
	fi, err := s.FirstIndex()
	require.NoError(t, err)
	li, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, first, fi, "first index")
	require.Equal(t, last, li, "last index")
	for i := first; i <= last; i++ {
		var l raft.Log
		require.NoError(t, s.GetLog(i, &l), "log %d", i)
		require.Equal(t, fmt.Sprintf("%d.%d:%0200d", i, termOf(i), i), string(l.Data))
	}
}

// TestLogStore_TruncationsSurviveRestart does to each store what raft
// does to a log: appends in batches, head truncations after snapshots,
// and tail truncations when a follower's uncommitted entries conflict
// with a new leader's; every entry left must read back after a restart.
func TestLogStore_TruncationsSurviveRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		dir := t.TempDir()
		s := openTestStore(t, dir, store)
		term := func(i uint64) uint64 { return 1 }
		for b := uint64(0); b < 20; b++ {
			storeLogs(t, s, b*10+1, b*10+10, 1)
		}
		requireLogs(t, s, 1, 200, term)
		require.NoError(t, s.DeleteRange(1, 50)) // after a snapshot
		// A new leader overwrites 191..200 with entries of term 2.
		require.NoError(t, s.DeleteRange(191, 200))
		requireLogs(t, s, 51, 190, term)
		require.NoError(t, s.Close())

		s = openTestStore(t, dir, store)
		requireLogs(t, s, 51, 190, term)
		storeLogs(t, s, 191, 195, 2)
		term = func(i uint64) uint64 {
			if i > 190 {
				return 2
			}
			return 1
		}
		requireLogs(t, s, 51, 195, term)
		require.NoError(t, s.Close())

		s = openTestStore(t, dir, store)
		requireLogs(t, s, 51, 195, term)
		require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 2))
		require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("b")))
		require.NoError(t, s.Close())
		s = openTestStore(t, dir, store)
		v, err := s.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.EqualValues(t, 2, v)
		c, err := s.Get([]byte("LastVoteCand"))
		require.NoError(t, err)
		require.Equal(t, "b", string(c))
		require.NoError(t, s.Close())
	})
}

// TestLogStore_RefusesAStoreInUse: a store that a running node holds is
// refused at once with ErrNodeRunning, where BoltDB's lock would make the
// open wait for ever; once closed, it opens.
func TestLogStore_RefusesAStoreInUse(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		dir := t.TempDir()
		s := openTestStore(t, dir, store)
		storeLogs(t, s, 1, 3, 1)
		o, err := storeOpts(store).withDefaults()
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			s2, err := openLogStore(dir, &o)
			if err == nil {
				s2.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			require.ErrorIs(t, err, ErrNodeRunning)
		case <-time.After(10 * time.Second):
			require.NoError(t, s.Close()) // lets the open go on and end
			t.Fatal("the open of a store in use waits")
		}
		require.NoError(t, s.Close())
		s = openTestStore(t, dir, store)
		defer s.Close()
		requireLogs(t, s, 1, 3, func(uint64) uint64 { return 1 })
	})
}

// TestLogStore_RefusesTheOtherStoresDirectory: a directory with raft
// state opened with the other store would look empty, and the node would
// forget its log and votes.
func TestLogStore_RefusesTheOtherStoresDirectory(t *testing.T) {
	for _, tc := range []struct{ wrote, opens LogStore }{{LogStoreBolt, LogStoreWAL}, {LogStoreWAL, LogStoreBolt}} {
		t.Run(string(tc.wrote), func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir, tc.wrote)
			storeLogs(t, s, 1, 3, 1)
			require.NoError(t, s.Close())
			o, err := storeOpts(tc.opens).withDefaults()
			require.NoError(t, err)
			_, err = openLogStore(dir, &o)
			require.ErrorIs(t, err, ErrInvalidOptions)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "nothing of the other store was created")
			s = openTestStore(t, dir, tc.wrote)
			defer s.Close()
			requireLogs(t, s, 1, 3, func(uint64) uint64 { return 1 })
		})
	}
}

// TestLogStore_DeposedLeaderRestartsAfterItsTailIsTruncated cuts the
// leader off while writers write to it, so that its log ends in entries
// that never commit; once it is back the new leader's entries replace
// them (a tail truncation in its log store), and it then restarts from
// that log: it must come back, apply what committed, and lose nothing.
func TestLogStore_DeposedLeaderRestartsAfterItsTailIsTruncated(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		c := newDBClusterOn(t, store, 3, nil)
		w := newWriteLog()
		truncated := false
		// A round leaves no tail when the entries in flight reached the
		// followers before the cut: 9 of 29 rounds with TestKill9
		// running beside (10 of 30 with raft's default commit timeout).
		// At a third, 4 rounds all fail about once in 80 runs, 10 about
		// once in 59,000.
		for round := 0; round < 10 && !truncated; round++ {
			l := c.leader()
			stop := make(chan struct{})
			wg := writers(3, w, func() *Node { return c.node(l) }, stop)
			time.Sleep(50 * time.Millisecond)
			c.net.Isolate(l)
			close(stop) // each writer's last write is in flight on the cut-off leader
			nl := c.leader(l)
			require.Eventually(t, func() bool { return c.node(l).rn.raft.State() != raft.Leader },
				10*time.Second, 5*time.Millisecond, "the cut-off leader steps down")
			old := c.node(l).rn.store
			last, err := old.LastIndex()
			require.NoError(t, err)
			var tail raft.Log
			require.NoError(t, old.GetLog(last, &tail))
			// The new leader's log grows past the old one's end.
			for k := 0; c.node(nl).rn.raft.LastIndex() <= last; k++ {
				_, err := c.node(nl).Set(fmt.Sprintf("past/%d/%d", round, k), "v", nil)
				require.NoError(t, err)
			}
			c.net.Isolate(l) // cut again whatever was dialed meanwhile
			c.net.Heal()
			// Its writes resolve as it applies the new leader's revisions:
			// more writes, until they have.
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
		more:
			for k := 0; ; k++ {
				select {
				case <-done:
					break more
				default:
				}
				if _, err := c.node(nl).Set(fmt.Sprintf("more/%d/%d", round, k), "v", nil); err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
			c.converged()
			var now raft.Log
			require.NoError(t, old.GetLog(last, &now))
			truncated = now.Term != tail.Term
			c.kill(l)
			c.restart(l)
			c.leader()
			c.converged()
			w.check(t, c)
		}
		require.True(t, truncated, "the cut-off leader's uncommitted tail was replaced")
		t.Logf("acknowledged %d, refused %d, uncertain %d", len(w.acked), len(w.refused), len(w.unknown))
	})
}

// countingStore counts the reads that reach the store under a raftStore.
type countingStore struct {
	logStore
	reads int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.reads++
	return s.logStore.GetLog(idx, l)
}

// TestRaftStore_RecentEntriesFromMemory: raft reads the entries stored
// last from memory, not the disk; a deleted entry, an entry pushed out
// by newer ones and a refused append are not served from there, and a
// refused append stays errLogRefused to errors.Is, as raft.LogCache
// would not leave it.
func TestRaftStore_RecentEntriesFromMemory(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) {
		inner, err := openLogStore(t.TempDir(), storeOpts(store))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, inner.Close()) })
		c := &countingStore{logStore: inner}
		var fault error
		s := &raftStore{logStore: c, fault: func() error { return fault }}
		entry := func(i uint64) *raft.Log {
			return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", i))}
		}
		get := func(i uint64) (raft.Log, error) {
			var l raft.Log
			err := s.GetLog(i, &l)
			return l, err
		}
		for i := uint64(1); i <= 3*recentEntries; i++ {
			require.NoError(t, s.StoreLogs([]*raft.Log{entry(i)}))
		}
		for i := uint64(2*recentEntries + 1); i <= 3*recentEntries; i++ {
			l, err := get(i)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint("entry ", i), string(l.Data))
		}
		require.Zero(t, c.reads, "recent entries were read from the store")
		l, err := get(recentEntries)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("entry ", recentEntries), string(l.Data))
		require.Equal(t, 1, c.reads, "an older entry comes from the store")

		// A follower drops a conflicting tail and stores another.
		last := uint64(3 * recentEntries)
		require.NoError(t, s.DeleteRange(last-1, last))
		_, err = get(last)
		require.ErrorIs(t, err, raft.ErrLogNotFound)
		fault = errors.New("disk full")
		err = s.StoreLogs([]*raft.Log{entry(last - 1)})
		require.ErrorIs(t, err, errLogRefused)
		_, err = get(last - 1)
		require.ErrorIs(t, err, raft.ErrLogNotFound, "a refused entry was served")
		fault = nil
		other := entry(last - 1)
		other.Term, other.Data = 2, []byte("the new leader's")
		require.NoError(t, s.StoreLogs([]*raft.Log{other}))
		l, err = get(last - 1)
		require.NoError(t, err)
		require.Equal(t, "the new leader's", string(l.Data))

		// An entry of one record over maxEntryBytes is not kept.
		big := entry(last)
		big.Data = make([]byte, maxEntryBytes+1)
		require.NoError(t, s.StoreLogs([]*raft.Log{big}))
		reads := c.reads
		l, err = get(last)
		require.NoError(t, err)
		require.Len(t, l.Data, maxEntryBytes+1)
		require.Equal(t, reads+1, c.reads, "a large entry was kept in memory")
	})
}
