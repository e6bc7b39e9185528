package cluster

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// stateMachine is a raft.FSM that says which entries it has applied.
// raft's own AppliedIndex moves when an entry is handed to the FSM, not
// when the FSM has applied it, so reads wait on this one.
type stateMachine interface {
	raft.FSM
	tracker() *appliedTracker
}

// appliedTracker follows the raft index of the last entry an FSM applied,
// and the command entries this node has stored and not yet applied.
//
// The second is for reads on a leader. raft tells the followers of a
// commit while the leader may still be applying the entry, so a follower
// can apply it, and serve a read that sees it, before the leader does. A
// read that begins after that one ends, on the leader, must see it too:
// the leader's read index is its commit index (the Raft thesis, §6.4),
// which may hold entries it has not applied yet, and not what it has
// applied. raft's own AppliedIndex will not do (it moves when an entry is
// handed to the FSM), nor will waiting for the commit index itself (its
// no-op and barrier entries never reach the FSM); so the raft store tells
// the tracker which entries are commands, and a read waits until the
// newest of them at or below the commit index is applied.
//
// Why no committed command can be missing from the list unapplied: a
// leader serves reads only once the barrier it applied on taking
// leadership is through, so every entry before the barrier is applied;
// every entry after it, this leader stored through the raft store, which
// tells the tracker before raft counts the entry stored here, and so
// before a quorum can commit it. An index left in the list that will
// never be applied (a snapshot restored over it, with the index of
// another snapshot opened meanwhile: raft opens its snapshots also to
// send them) would hold reads until a later command applies; the
// leader drops what lies before its barrier (dropThrough).
type appliedTracker struct {
	applied atomic.Uint64
	opened  atomic.Uint64 // the index of the snapshot being restored
	// firstPending is pending[0], or 0 when none is pending: the lowest
	// command entry stored and not applied.
	firstPending atomic.Uint64

	mu      sync.Mutex    // guards changed and pending
	changed chan struct{} // closed and replaced when applied moves; nil until needed
	pending []uint64      // the indices of command entries stored and not applied, ascending
}

// advance records that the entry at index was applied.
func (t *appliedTracker) advance(index uint64) {
	t.mu.Lock()
	t.applied.Store(index)
	t.dropFront(index)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
	t.mu.Unlock()
}

// stored records the command entries of logs, which the raft store has
// just stored. Entries at those indices stored before were deleted, or
// are replaced now.
func (t *appliedTracker) stored(logs []*raft.Log) {
	if len(logs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = t.pending[:t.below(logs[0].Index)]
	applied := t.applied.Load()
	for _, l := range logs {
		if l.Type == raft.LogCommand && l.Index > applied {
			t.pending = append(t.pending, l.Index)
		}
	}
	t.settle()
}

// deleted records that the raft store deleted the entries from lo to hi.
func (t *appliedTracker) deleted(lo, hi uint64) {
	if lo > hi {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = slices.Delete(t.pending, t.below(lo), t.through(hi))
	t.settle()
}

// dropThrough forgets the pending entries up to index, which are
// applied, or were replaced by a snapshot: the leader calls it once its
// barrier, after index, is applied.
func (t *appliedTracker) dropThrough(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropFront(index)
}

// dropFront removes the pending indices up to index; with t.mu held.
func (t *appliedTracker) dropFront(index uint64) {
	if k := t.through(index); k > 0 {
		t.pending = t.pending[k:]
		t.settle()
	}
}

// below and through count the pending indices below index, and at or
// below it; with t.mu held.
func (t *appliedTracker) below(index uint64) int {
	k, _ := slices.BinarySearch(t.pending, index)
	return k
}

func (t *appliedTracker) through(index uint64) int {
	k, found := slices.BinarySearch(t.pending, index)
	if found {
		k++
	}
	return k
}

// settle sets firstPending after pending changed, and lets the array of
// a backlog go once none is left; with t.mu held.
func (t *appliedTracker) settle() {
	if len(t.pending) == 0 {
		t.pending = nil
		t.firstPending.Store(0)
	} else {
		t.firstPending.Store(t.pending[0])
	}
}

// appliedThrough reports, without waiting or locking, whether every
// command entry up to index ci that this node stored is applied.
func (t *appliedTracker) appliedThrough(ci uint64) bool {
	p := t.firstPending.Load()
	return p == 0 || p > ci
}

// waitThrough waits until every command entry up to index ci that this
// node stored is applied.
func (t *appliedTracker) waitThrough(ctx context.Context, ci uint64) error {
	t.mu.Lock()
	k := t.through(ci)
	var last uint64
	if k > 0 {
		last = t.pending[k-1]
	}
	t.mu.Unlock()
	if last == 0 {
		return nil
	}
	return t.wait(ctx, last)
}

// restored records that the snapshot last opened was restored.
func (t *appliedTracker) restored() { t.advance(t.opened.Load()) }

// index is the raft index of the last entry applied.
func (t *appliedTracker) index() uint64 { return t.applied.Load() }

// wait waits until the entry at index is applied.
func (t *appliedTracker) wait(ctx context.Context, index uint64) error {
	for {
		t.mu.Lock()
		if t.applied.Load() >= index {
			t.mu.Unlock()
			return nil
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: applied %d of %d: %w", ErrBehind, t.applied.Load(), index, ctx.Err())
		}
	}
}

// snapStore is the file snapshot store, telling the tracker the index of
// each snapshot raft opens: raft opens one just before it restores it
// into the FSM, at start or when the leader sends one.
type snapStore struct {
	*raft.FileSnapshotStore
	t       *appliedTracker
	written *atomic.Int64 // snapshots persisted, taken or received (Node.Stats)
}

// Create counts the snapshot once it is persisted.
func (s snapStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &countedSink{SnapshotSink: sink, written: s.written}, nil
}

// countedSink counts a snapshot sink closed without error, once: the
// FSM's Persist closes it, then raft does again.
type countedSink struct {
	raft.SnapshotSink
	written *atomic.Int64
	counted bool
}

func (s *countedSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if !s.counted {
		s.counted = true
		s.written.Add(1)
	}
	return nil
}

func (s snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err == nil {
		s.t.opened.Store(meta.Index)
	}
	return meta, rc, err
}
