package pubsub

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHistory_ArrayReused: a history that keeps a bounded number of
// batches reuses its array once it has filled it, instead of growing it
// for good, and still holds exactly the newest batches, in order.
func TestHistory_ArrayReused(t *testing.T) {
	const keep = 1000
	h := history{maxEvents: keep, maxBytes: 1 << 40}
	ev := []Event{{Key: "k"}}
	var capAt int // the array's size once keep batches are in
	for rev := int64(1); rev <= 50*keep; rev++ {
		h.add(Batch{Revision: rev, Events: ev}, rev)
		if rev == keep {
			capAt = cap(h.batches)
		}
		if rev > keep {
			require.Equal(t, keep, h.len(), "revision %d", rev)
			require.Equal(t, rev-keep+1, h.batches[h.start].Revision)
			require.Equal(t, rev, h.batches[len(h.batches)-1].Revision)
		}
	}
	require.LessOrEqual(t, cap(h.batches), 2*capAt, "the array kept growing")
	for i := range h.start {
		require.Nil(t, h.batches[i].Events, "an evicted batch still holds its events")
	}
	out, ok := h.after(50*keep-10, 50*keep, 100)
	require.True(t, ok)
	require.Len(t, out, 10)
	for i, b := range out {
		require.Equal(t, int64(50*keep-9+i), b.Revision)
	}
}
