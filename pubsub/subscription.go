package pubsub

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/pattern"
)

// SubscribeOptions modify a subscription. A nil *SubscribeOptions means the
// defaults.
type SubscribeOptions struct {
	// FromRevision, when above 0, asks for every matching event with a
	// greater revision, then the live ones, with no gap between. A
	// revision older than the history holds is ErrCompacted at once. 0
	// means from now: events of revisions published after Subscribe.
	FromRevision int64

	// Buffer is how many events the Events channel holds. A subscription
	// whose buffer is full falls behind and catches up from the history;
	// it never makes a writer wait. Default 256.
	Buffer int
}

// Subscription receives the events whose keys match its patterns: in
// revision order, each once, without gaps, the events of one transaction
// one after another. It ends on Close, when the broker closes, or when it
// falls behind the history (ErrCompacted); then Events is closed and Err
// says why.
type Subscription struct {
	b        *Broker
	patterns []*pattern.Pattern
	ch       chan Event

	// Guarded by b.smu.
	synced   bool          // the dispatcher sends to it
	catching bool          // a catch-up goroutine runs; it closes ch
	ended    bool          // no more events will be sent
	err      error         // why it ended
	next     int64         // first revision the catch-up goroutine needs
	kill     chan struct{} // closed to stop the catch-up goroutine
	through  int64         // every event up to this revision is in ch (once ended)

	markRev int64 // the dispatcher's: last batch this subscription was matched in

	fetched atomic.Int64  // catch-up: the revision it will next read the history after
	exited  chan struct{} // closed when the catch-up goroutine returns
}

// Subscribe starts a subscription to the keys that match any of patterns.
func (b *Broker) Subscribe(patterns []*pattern.Pattern, opts *SubscribeOptions) (*Subscription, error) {
	if len(patterns) == 0 {
		return nil, ErrNoPatterns
	}
	o := SubscribeOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.FromRevision < 0 {
		return nil, fmt.Errorf("pubsub: negative FromRevision %d", o.FromRevision)
	}
	s := &Subscription{b: b, patterns: patterns, ch: make(chan Event, o.Buffer)}

	b.hmu.Lock()
	last, oldest := b.hist.last, b.hist.oldest()
	b.hmu.Unlock()
	from := o.FromRevision
	if from == 0 {
		from = last
	}
	if from < oldest {
		return nil, &CompactedError{Revision: from, Oldest: oldest}
	}

	b.smu.Lock()
	defer b.smu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	b.nsubs.Store(int64(len(b.subs)))
	for _, p := range patterns {
		b.index.Add(p, s)
	}
	if from == b.cursor.Load() {
		s.synced = true
	} else {
		s.next = from + 1
		b.startCatchUp(s)
	}
	return s, nil
}

func (s *Subscription) matches(key string) bool {
	for _, p := range s.patterns {
		if p.Match(key) {
			return true
		}
	}
	return false
}

// Events returns the channel that delivers the subscription's events. It is
// closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Next waits for the next event. After the subscription ends and its
// buffered events are read, it returns the reason (Err); it returns
// ctx.Err() if ctx ends first.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-s.ch:
		if !ok {
			return Event{}, s.Err()
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Err returns why the subscription ended (ErrClosed, a *CompactedError), or
// nil while it runs.
func (s *Subscription) Err() error {
	s.b.smu.Lock()
	defer s.b.smu.Unlock()
	return s.err
}

// Revision returns, once the subscription has ended, the revision through
// which every matching event was put into Events: after reading Events to
// its end, subscribe again with FromRevision set to it to go on exactly
// where this one stopped. While the subscription runs it returns 0.
func (s *Subscription) Revision() int64 {
	s.b.smu.Lock()
	defer s.b.smu.Unlock()
	if !s.ended {
		return 0
	}
	return s.through
}

// Close ends the subscription with ErrClosed and waits until it sends no
// more events. Events already in the channel stay there to be read.
// Closing twice does nothing.
func (s *Subscription) Close() error {
	s.b.smu.Lock()
	s.end(ErrClosed)
	s.b.cond.Broadcast()
	exited := s.exited
	s.b.smu.Unlock()
	if exited != nil {
		<-exited
	}
	return nil
}

// end stops the subscription; b.smu is held.
func (s *Subscription) end(err error) {
	if s.ended {
		return
	}
	b := s.b
	s.ended, s.err = true, err
	for _, p := range s.patterns {
		b.index.Remove(p, s)
	}
	delete(b.subs, s)
	b.nsubs.Store(int64(len(b.subs)))
	delete(b.lagging, s)
	if _, ok := err.(*CompactedError); ok {
		b.stats.compacted.Add(1)
	}
	if s.catching {
		close(s.kill) // the catch-up goroutine sets through and closes ch
		return
	}
	s.through = b.cursor.Load()
	close(s.ch)
}

// catchUp feeds a subscription that is behind from the history until it is
// in step with the dispatcher, then hands it back.
func (s *Subscription) catchUp() {
	b := s.b
	defer b.wg.Done()
	defer close(s.exited)
	var done int64 = s.next - 1 // every matching event through done is in ch
	finish := func() {
		s.through = done
		s.catching = false
		close(s.ch)
	}
	for {
		b.smu.Lock()
		for !s.ended && b.cursor.Load() < s.next-1 {
			b.cond.Wait() // the dispatcher has not reached where we start
		}
		if s.ended {
			finish()
			b.smu.Unlock()
			return
		}
		cursor := b.cursor.Load()
		if s.next > cursor {
			// Everything through the dispatcher's cursor is in ch: from its
			// next batch on, the dispatcher sends to us again.
			s.synced, s.catching = true, false
			s.markRev = 0
			delete(b.lagging, s)
			b.smu.Unlock()
			return
		}
		b.smu.Unlock()

		b.hmu.Lock()
		batches, ok := b.hist.after(s.next-1, cursor, 64)
		oldest := b.hist.oldest()
		b.hmu.Unlock()
		if !ok {
			b.smu.Lock()
			s.catching = false // we close ch ourselves below
			s.end(&CompactedError{Revision: s.next - 1, Oldest: oldest})
			s.through = done
			b.smu.Unlock()
			return
		}
		for i := range batches {
			if !s.send(&batches[i]) {
				b.smu.Lock()
				finish()
				b.smu.Unlock()
				return
			}
			done = batches[i].Revision
			s.fetched.Store(done)
		}
		if len(batches) < 64 {
			done = cursor // nothing else up to the cursor
		}
		s.next = done + 1
		s.fetched.Store(done)
	}
}

// roomPoll is how often a catch-up goroutine looks for room for a whole
// transaction in a full buffer.
const roomPoll = time.Millisecond

// send puts the batch's matching events into ch, all of them or, if the
// subscription is stopped first, none: a transaction is never split,
// unless it has more matching events than the buffer holds. It reports
// false if the subscription was stopped.
func (s *Subscription) send(batch *Batch) bool {
	n := 0
	for i := range batch.Events {
		if s.matches(batch.Events[i].Key) {
			n++
		}
	}
	if n == 0 {
		return true
	}
	if n <= cap(s.ch) {
		// Wait for room for all n; only this goroutine sends, so the
		// room stays.
		var t *time.Ticker
		for cap(s.ch)-len(s.ch) < n {
			if t == nil {
				t = time.NewTicker(roomPoll)
				defer t.Stop()
			}
			select {
			case <-t.C:
			case <-s.kill:
				return false
			}
		}
		for _, ev := range batch.Events {
			if s.matches(ev.Key) {
				s.ch <- ev
			}
		}
		s.b.stats.delivered.Add(int64(n))
		return true
	}
	for _, ev := range batch.Events {
		if !s.matches(ev.Key) {
			continue
		}
		select {
		case s.ch <- ev:
			s.b.stats.delivered.Add(1)
		case <-s.kill:
			return false
		}
	}
	return true
}
