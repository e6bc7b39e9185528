package pubsub

import (
	"sort"

	"github.com/livekv/livekv/internal/ring"
)

// history keeps the most recent batches, bounded by events and bytes, so
// that subscriptions can catch up and resume. It is guarded by Broker.hmu.
//
// The batches are a ring (internal/ring): at its bounds, nothing moves as
// batches come and go; a copy would also pay the collector's write
// barrier for each of its events' pointers while a collection marks.
type history struct {
	batches ring.Ring[Batch] // the live batches, oldest first
	events  int
	bytes   int64
	last    int64 // revision of the newest batch ever added
	evicted int64 // revision of the newest batch evicted; 0 if none

	maxEvents int
	maxBytes  int64
}

// add appends a batch and evicts the oldest beyond the limits, but none
// after handled: a lane has yet to read those.
func (h *history) add(b Batch, handled int64) {
	h.batches.Push(b)
	h.last = b.Revision
	h.events += len(b.Events)
	for i := range b.Events {
		h.bytes += b.Events[i].size()
	}
	h.evict(handled)
}

// evict drops the oldest batches beyond the limits, but none after handled.
func (h *history) evict(handled int64) {
	// Keep the newest batch even if it alone is over the limits.
	for h.len() > 1 && h.batches.At(0).Revision <= handled && (h.events > h.maxEvents || h.bytes > h.maxBytes) {
		old := h.batches.At(0)
		h.events -= len(old.Events)
		for i := range old.Events {
			h.bytes -= old.Events[i].size()
		}
		h.evicted = old.Revision
		h.batches.Pop() // and its events go
	}
}

func (h *history) len() int { return h.batches.Len() }

// oldest returns the oldest revision held, or the next to come if none
// is: a subscription can go on in it (From: Position{Revision: oldest}, or
// FromRevision oldest - 1) and get every event from it on.
func (h *history) oldest() int64 { return h.evicted + 1 }

// fetchMax is how many batches a lane or a follower takes from the
// history at a time.
const fetchMax = 64

// after returns up to max batches with revisions above rev and at most
// upTo, or ok=false if some of them were evicted.
func (h *history) after(rev, upTo int64, max int) (out []Batch, ok bool) {
	if rev < h.evicted {
		return nil, false
	}
	n := h.len()
	i := sort.Search(n, func(i int) bool { return h.batches.At(i).Revision > rev })
	for ; i < n && h.batches.At(i).Revision <= upTo && len(out) < max; i++ {
		out = append(out, *h.batches.At(i))
	}
	return out, true
}

// Oldest returns the oldest revision the history holds, or the next to
// come if it holds none: a subscription can go on from it (FromRevision
// Oldest-1) and get every event from it on.
func (b *Broker) Oldest() int64 {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	return b.hist.oldest()
}
