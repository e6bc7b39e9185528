package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func logsAt(types ...raft.LogType) func(first uint64) []*raft.Log {
	return func(first uint64) []*raft.Log {
		var ls []*raft.Log
		for i, typ := range types {
			ls = append(ls, &raft.Log{Index: first + uint64(i), Type: typ})
		}
		return ls
	}
}

// TestAppliedTracker_Pending: the tracker follows the command entries
// stored and not applied, whatever other entries lie between (raft's
// no-op and barrier entries never reach the FSM), through deletes and
// entries stored again at the same indices.
func TestAppliedTracker_Pending(t *testing.T) {
	var tr appliedTracker
	require.True(t, tr.appliedThrough(100), "nothing stored")
	tr.stored(logsAt(raft.LogNoop, raft.LogCommand, raft.LogBarrier, raft.LogCommand, raft.LogCommand)(5))
	require.True(t, tr.appliedThrough(5), "a no-op is not waited for")
	require.False(t, tr.appliedThrough(6))
	require.False(t, tr.appliedThrough(100))

	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, tr.waitThrough(short, 7), ErrBehind, "entry 6 is not applied")
	done := make(chan error, 1)
	go func() { done <- tr.waitThrough(context.Background(), 7) }()
	select {
	case err := <-done:
		t.Fatalf("waitThrough returned before entry 6 was applied: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	tr.advance(6)
	require.NoError(t, <-done)
	require.True(t, tr.appliedThrough(7), "the barrier at 7 is not waited for")
	require.False(t, tr.appliedThrough(8))

	// A follower's tail replaced: 9 deleted, 8 stored again.
	tr.deleted(9, 20)
	require.Equal(t, []uint64{8}, tr.pending)
	tr.stored(logsAt(raft.LogCommand, raft.LogNoop)(8))
	require.Equal(t, []uint64{8}, tr.pending)
	tr.stored(logsAt(raft.LogCommand)(7))
	require.Equal(t, []uint64{7}, tr.pending, "entries from 7 on were replaced")
	tr.advance(7)
	require.True(t, tr.appliedThrough(100))
	require.Zero(t, tr.firstPending.Load())
	require.NoError(t, tr.waitThrough(context.Background(), 100))

	// Stored again at or below what was applied (after a snapshot):
	// nothing to wait for.
	tr.stored(logsAt(raft.LogCommand)(3))
	require.True(t, tr.appliedThrough(100))
	tr.opened.Store(50)
	tr.restored()
	tr.stored(logsAt(raft.LogCommand, raft.LogCommand, raft.LogCommand)(49))
	require.Equal(t, []uint64{51}, tr.pending)
	require.True(t, tr.appliedThrough(50))
	require.False(t, tr.appliedThrough(51))

	// A leader drops what lies before its barrier, applied or not.
	tr.stored(logsAt(raft.LogCommand, raft.LogNoop, raft.LogCommand)(52))
	require.Equal(t, []uint64{51, 52, 54}, tr.pending)
	tr.dropThrough(53)
	require.Equal(t, []uint64{54}, tr.pending)
	require.False(t, tr.appliedThrough(54))
	tr.advance(60)
	require.True(t, tr.appliedThrough(1000))
}
