package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/livekv/livekv/wal"
)

// errLogRefused marks a failure to append to the raft log after which
// the entries are certainly not in it: BoltDB's disk was full (its
// transaction then did not commit), the fault hook refused the write
// before the store saw it, or the node was closing. raft-wal v0.4.0 does
// not roll back its state after a failed write, so its errors are passed
// on unmarked. raft answers the
// proposal with this error and the leader steps down; its writers learn
// at once that the write did not commit.
var errLogRefused = errors.New("cluster: the raft log refused the entries")

// errFenced is what the raft stores return to writes once the node has
// given up on a full disk while closing; see raftStore.
var errFenced = errors.New("cluster: the raft store is fenced off: the node is closing")

// raftStore is the raft log and stable store, BoltDB or raft-wal, made
// to survive a full disk. hashicorp/raft copes with a failed log append (a leader
// steps down, a follower refuses the entries and the leader retries
// them), but it panics when it cannot save its current term. So:
//
//   - a log write (StoreLogs, DeleteRange) that fails is returned to raft;
//     an append certainly not made is marked errLogRefused;
//   - a stable-store write (term and vote) that fails is retried, with
//     backoff, until it succeeds: the node stalls, answering no raft RPC,
//     and takes up again once there is space;
//   - if the node closes while such a write still fails, the store first
//     cuts the node's network, then lets raft believe the write was saved
//     and refuses every write after it. Nothing raft does from then on
//     reaches the disk or another node, so the node ends as if it had
//     crashed before that write, which raft tolerates.
type raftStore struct {
	logStore // BoltDB or raft-wal

	fault   func() error    // test hook: fails every write with its error; nil normally
	tracker *appliedTracker // told of the command entries stored and deleted
	closing <-chan struct{} // closed when the node starts closing
	cut     func()          // closes the node's network
	logf    func(format string, args ...any)

	// recent holds the entries stored last, at their index modulo its
	// length, so that raft reads them from memory: the leader each entry
	// it sends a follower, a follower each entry it applies.
	recentMu sync.RWMutex
	recent   [recentEntries]*raft.Log

	// retry is set once raft runs: before, stable-store errors are
	// returned, since bootstrapping handles them.
	retry    atomic.Bool
	fence    sync.Once
	fenced   atomic.Bool
	fencedBy error        // the write error that fenced the store; set before fenced
	stalls   atomic.Int64 // stable-store writes that had to wait, for tests

	// appendLat counts the log appends that reached the store, each
	// written and synced as one, by how long they took (Node.Stats).
	appendsMu sync.Mutex
	appendLat wal.SyncHistogram
}

// appendStats returns how long the log appends the store made took.
func (s *raftStore) appendStats() wal.SyncHistogram {
	s.appendsMu.Lock()
	defer s.appendsMu.Unlock()
	return s.appendLat
}

// fenceErr reports, for Close, that raft's last writes were dropped.
func (s *raftStore) fenceErr() error {
	if !s.fenced.Load() {
		return nil
	}
	return fmt.Errorf("cluster: closed while the raft stable store refused writes; raft's last changes of term or vote were dropped: %w", s.fencedBy)
}

func (s *raftStore) faulty() error {
	if s.fault != nil {
		return s.fault()
	}
	return nil
}

// logErr marks err, from a log write, for raft's caller.
func (s *raftStore) logErr(err error) error {
	if _, bolt := s.logStore.(*raftboltdb.BoltStore); bolt && errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", errLogRefused, err)
	}
	return err
}

// IsMonotonic passes on raft-wal's raft.MonotonicLogStore: raft then
// clears the whole log when it installs a snapshot.
func (s *raftStore) IsMonotonic() bool {
	m, ok := s.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (s *raftStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *raftStore) StoreLogs(logs []*raft.Log) error {
	if s.fenced.Load() {
		return fmt.Errorf("%w: %w", errLogRefused, errFenced)
	}
	if err := s.faulty(); err != nil {
		return fmt.Errorf("%w: %w", errLogRefused, err)
	}
	began := time.Now()
	if err := s.logStore.StoreLogs(logs); err != nil {
		return s.logErr(err)
	}
	took := time.Since(began)
	s.appendsMu.Lock()
	s.appendLat.Add(took)
	s.appendsMu.Unlock()
	s.recentMu.Lock()
	for _, l := range logs {
		slot := &s.recent[l.Index%recentEntries]
		if len(l.Data) > maxEntryBytes {
			*slot = nil // one record over an entry's size: read from the store
			continue
		}
		*slot = l
	}
	s.recentMu.Unlock()
	if s.tracker != nil {
		s.tracker.stored(logs)
	}
	return nil
}

func (s *raftStore) DeleteRange(lo, hi uint64) error {
	if s.fenced.Load() {
		return errFenced
	}
	if err := s.faulty(); err != nil {
		return err
	}
	// Told first: a read must not wait for an entry that is gone.
	if s.tracker != nil {
		s.tracker.deleted(lo, hi)
	}
	s.recentMu.Lock()
	for i, l := range s.recent {
		if l != nil && l.Index >= lo && l.Index <= hi {
			s.recent[i] = nil
		}
	}
	s.recentMu.Unlock()
	return s.logStore.DeleteRange(lo, hi)
}

// recentEntries is how many of the entries stored last raftStore keeps
// in memory: more than the proposer has in flight (maxInFlight), with
// room for raft's own entries and a follower a few entries behind. An
// entry holds up to maxEntryBytes of records, or one larger record, which
// is not kept: the cache holds at most 32 MiB.
const recentEntries = 32

// GetLog reads the entry at index idx, from memory if it was stored
// lately. raft.LogCache does the same, but wraps a failed append's error
// as text, and raft would no longer tell errLogRefused.
func (s *raftStore) GetLog(idx uint64, l *raft.Log) error {
	s.recentMu.RLock()
	r := s.recent[idx%recentEntries]
	s.recentMu.RUnlock()
	if r != nil && r.Index == idx {
		*l = *r
		return nil
	}
	return s.logStore.GetLog(idx, l)
}

// termAt returns the term of the entry at idx, if the log holds it.
func (s *raftStore) termAt(idx uint64) (uint64, bool) {
	var l raft.Log
	if err := s.GetLog(idx, &l); err != nil {
		return 0, false
	}
	return l.Term, true
}

func (s *raftStore) Set(k, v []byte) error {
	return s.stable(func() error { return s.logStore.Set(k, v) })
}

func (s *raftStore) SetUint64(k []byte, v uint64) error {
	return s.stable(func() error { return s.logStore.SetUint64(k, v) })
}

// stable runs a stable-store write, retrying it once raft runs; see
// raftStore.
func (s *raftStore) stable(write func() error) error {
	wait := time.Millisecond
	for logged := false; ; logged = true {
		if s.fenced.Load() {
			return nil // dropped: nothing of this node reaches anyone now
		}
		err := s.faulty()
		if err == nil {
			err = write()
		}
		if err == nil || !s.retry.Load() {
			if logged && err == nil {
				s.logf("cluster: the raft stable store accepts writes again")
			}
			return err
		}
		if !logged {
			s.stalls.Add(1)
			s.logf("cluster: the raft stable store refuses a write, retrying until it accepts: %v", err)
		}
		select {
		case <-s.closing:
			// raft's main goroutine and its heartbeat handler may
			// both be here.
			s.fence.Do(func() {
				s.cut()
				s.fencedBy = err
				s.fenced.Store(true)
				s.logf("cluster: closing while the raft stable store refuses writes; raft's later writes are dropped")
			})
			return nil
		case <-time.After(wait):
			wait = min(2*wait, 100*time.Millisecond)
		}
	}
}

// faultySnaps fails the creation of snapshots while the fault hook says
// so, as a full disk would. It is used only with a hook (Options.storeFault).
type faultySnaps struct {
	snapStore
	fault func() error
}

func (s faultySnaps) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	return s.snapStore.Create(version, index, term, configuration, configurationIndex, trans)
}

var (
	_ logStore               = (*raftStore)(nil)
	_ raft.MonotonicLogStore = (*raftStore)(nil)
	_ raft.SnapshotStore     = faultySnaps{}
)
