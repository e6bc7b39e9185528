package pubsub

import "sort"

// history keeps the most recent batches, bounded by events and bytes, so
// that subscriptions can catch up and resume. It is guarded by Broker.hmu.
type history struct {
	batches []Batch // oldest first; batches[start:] are live
	start   int
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
	if len(h.batches) == cap(h.batches) && h.start > 0 && h.start >= len(h.batches)/4 {
		// Full, with a quarter or more of it evicted: the live batches
		// move to the front rather than into a larger array. Each move
		// copies at most three quarters of the array and frees a quarter
		// for the adds after it (at most 3 batches copied an add), and an
		// array grows only while more than three quarters of it are live.
		n := copy(h.batches, h.batches[h.start:])
		clear(h.batches[n:])
		h.batches = h.batches[:n]
		h.start = 0
	}
	h.batches = append(h.batches, b)
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
	for h.len() > 1 && h.batches[h.start].Revision <= handled && (h.events > h.maxEvents || h.bytes > h.maxBytes) {
		old := &h.batches[h.start]
		h.events -= len(old.Events)
		for i := range old.Events {
			h.bytes -= old.Events[i].size()
		}
		h.evicted = old.Revision
		*old = Batch{} // its events go; add reuses the room
		h.start++
	}
}

func (h *history) len() int { return len(h.batches) - h.start }

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
	live := h.batches[h.start:]
	i := sort.Search(len(live), func(i int) bool { return live[i].Revision > rev })
	for ; i < len(live) && live[i].Revision <= upTo && len(out) < max; i++ {
		out = append(out, live[i])
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
