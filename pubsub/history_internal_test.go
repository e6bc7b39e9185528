package pubsub

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestHistory_ArrayReused: a history that keeps a bounded number of
// batches reuses its ring once it has filled it, instead of growing it
// for good, and still holds exactly the newest batches, in order.
func TestHistory_ArrayReused(t *testing.T) {
	const keep = 1000
	h := history{maxEvents: keep, maxBytes: 1 << 40}
	ev := []Event{{Key: "k"}}
	var capAt int // the ring's size once keep batches are in
	for rev := int64(1); rev <= 50*keep; rev++ {
		h.add(Batch{Revision: rev, Events: ev}, rev)
		if rev == keep {
			capAt = h.batches.Cap()
		}
		if rev > keep {
			require.Equal(t, keep, h.len(), "revision %d", rev)
			require.Equal(t, rev-keep+1, h.batches.At(0).Revision)
			require.Equal(t, rev, h.batches.At(h.len()-1).Revision)
		}
	}
	require.Equal(t, capAt, h.batches.Cap(), "the ring grew past what it keeps")
	out, ok := h.after(50*keep-10, 50*keep, 100)
	require.True(t, ok)
	require.Len(t, out, 10)
	for i, b := range out {
		require.Equal(t, int64(50*keep-9+i), b.Revision)
	}
}

// TestHistory_UnreadBatchesStay: batches a lane has yet to read are never
// evicted, so the history grows past its bounds and keeps every batch in
// order; once read, they go down to the bounds again.
func TestHistory_UnreadBatchesStay(t *testing.T) {
	const keep = 10
	h := history{maxEvents: keep, maxBytes: 1 << 40}
	ev := []Event{{Key: "k"}}
	for rev := int64(1); rev <= 25; rev++ {
		h.add(Batch{Revision: rev, Events: ev}, rev)
	}
	for rev := int64(26); rev <= 100; rev++ {
		h.add(Batch{Revision: rev, Events: ev}, 25) // a lane read up to 25
	}
	require.Equal(t, 75, h.len())
	out, ok := h.after(25, 100, 1000)
	require.True(t, ok)
	require.Len(t, out, 75)
	for i, b := range out {
		require.Equal(t, int64(26+i), b.Revision)
	}
	h.evict(100)
	require.Equal(t, keep, h.len())
	require.Equal(t, int64(91), h.batches.At(0).Revision)
	require.Equal(t, int64(90), h.evicted)
}

// TestHistory_BytesCountTheEvent: the byte bound counts each event's own
// size, the Event struct, beside its key and value: a history bounded to
// 80,000 bytes holds at most 80,000 / (that size + 2) events of a 1-byte
// key and a 1-byte value.
func TestHistory_BytesCountTheEvent(t *testing.T) {
	b := NewBroker(0, &Options{HistoryBytes: 80_000})
	defer b.Close()
	for rev := int64(1); rev <= 5000; rev++ {
		b.Publish(Batch{Revision: rev, Events: []Event{{Revision: rev, Type: Put, Key: "k", Value: "v"}}})
	}
	per := int(unsafe.Sizeof(Event{})) + 2
	require.Eventually(t, func() bool { return b.Stats().History <= 80_000/per+1 }, 5*time.Second, time.Millisecond,
		"events held: %d, each %d bytes", b.Stats().History, per)
}
