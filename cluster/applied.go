package cluster

import (
	"context"
	"fmt"
	"io"
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

// appliedTracker follows the raft index of the last entry an FSM applied.
type appliedTracker struct {
	applied atomic.Uint64
	opened  atomic.Uint64 // the index of the snapshot being restored

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed and replaced when applied moves; nil until needed
}

// advance records that the entry at index was applied.
func (t *appliedTracker) advance(index uint64) {
	t.mu.Lock()
	t.applied.Store(index)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
	t.mu.Unlock()
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
	t *appliedTracker
}

func (s snapStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err == nil {
		s.t.opened.Store(meta.Index)
	}
	return meta, rc, err
}
