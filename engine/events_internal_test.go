package engine

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// TestEventSlab_Take: the events of one commit are zeroed, exactly as many
// as asked, and share no memory with another commit's, even when a
// subscriber appends to them; a large transaction's events are their own.
func TestEventSlab_Take(t *testing.T) {
	var s eventSlab
	var got [][]pubsub.Event
	for i := range 200 {
		n := 1 + i%5
		ev := s.take(n)
		require.Len(t, ev, n)
		require.Equal(t, n, cap(ev), "an append must not write into the next commit's events")
		for j := range ev {
			require.Equal(t, pubsub.Event{}, ev[j])
			ev[j] = pubsub.Event{Revision: int64(i), Index: j}
		}
		got = append(got, ev)
	}
	_ = append(got[0], pubsub.Event{Revision: -1})
	for i, ev := range got {
		for j := range ev {
			require.Equal(t, pubsub.Event{Revision: int64(i), Index: j}, ev[j])
		}
	}
	big := s.take(eventSlabSize)
	require.Len(t, big, eventSlabSize)
	before := len(s.free)
	s.take(eventSlabSize/4 + 1)
	require.Equal(t, before, len(s.free), "a large transaction takes nothing from the slab")
}

// TestKinds_RoundTrip: every event type goes into the log as a write kind
// and comes back as itself; kinds and types that do not exist map to 0,
// which the log refuses and no event has.
func TestKinds_RoundTrip(t *testing.T) {
	for _, typ := range []pubsub.Type{pubsub.Put, pubsub.Patch, pubsub.Increment, pubsub.Delete, pubsub.Expire} {
		k := walKindOf(typ)
		require.NotZero(t, k, "%v", typ)
		require.Equal(t, typ, eventType(k))
	}
	require.Equal(t, byte(wal.KindDelete), walKindOf(pubsub.Delete))
	for _, k := range []byte{0, 6, 255} {
		require.Zero(t, eventType(k), "kind %d", k)
	}
	for _, typ := range []pubsub.Type{0, 6, 255} {
		require.Zero(t, walKindOf(typ), "type %d", typ)
	}
}

// TestEventBytes: the pieces eventBytes hands out never overlap, each
// holds what was written into it after all the others were, small ones
// come one after another from shared chunks, and one larger than a
// quarter chunk has its own.
func TestEventBytes(t *testing.T) {
	var eb eventBytes
	r := rand.New(rand.NewPCG(3, 5))
	var pieces [][]byte
	var end uintptr // where the last small piece ended
	small, next := 0, 0
	for i := range 5000 {
		n := 1 + r.IntN(300)
		if i%500 == 0 {
			n = eventChunk/4 + 1 + r.IntN(eventChunk)
		}
		b := eb.take(n)
		require.Len(t, b, n)
		require.Equal(t, n, cap(b), "no room after a piece")
		for j := range b {
			b[j] = byte(i)
		}
		pieces = append(pieces, b)
		if start := uintptr(unsafe.Pointer(unsafe.SliceData(b))); n <= eventChunk/4 {
			small++
			if start == end {
				next++
			}
			end = start + uintptr(n)
		} else {
			require.NotEqual(t, end, start, "a large piece in a shared chunk")
		}
	}
	for i, b := range pieces {
		for _, c := range b {
			require.Equal(t, byte(i), c, "piece %d written over", i)
		}
	}
	require.Greater(t, next, small*9/10, "small pieces come one after another in shared chunks")
}
