package pubsub

import (
	"context"
	"fmt"
	"slices"
	"sync"

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
// one after another. It ends on Close, when the broker closes, when it
// falls behind the history (ErrCompacted), or when one of its regexes
// cannot decide whether a key matches (ErrPatternTimeout); then Events is
// closed and Err says why.
type Subscription struct {
	b        *Broker
	patterns []*pattern.Pattern // those that cannot run out of time first
	regex    bool               // a regex is among them: a goroutine of its own feeds it
	ch       chan Event
	wake     chan struct{} // dispatcher → follower: the cursor moved; capacity 1

	// mu guards the fields below and every send on ch, so that a send
	// never meets a closed channel: ch is closed under mu.
	mu      sync.Mutex
	synced  bool          // the dispatcher sends to it
	ended   bool          // no more events will be sent
	err     error         // why it ended
	through int64         // every matching event up to this revision is in ch (synced: or up to the cursor)
	kill    chan struct{} // closed to stop the follower
	exited  chan struct{} // closed when the follower returns

	markRev int64 // guarded by b.dmu: last batch the dispatcher matched it in

	scratch []int // the follower's
}

// Subscribe starts a subscription to the keys that match any of patterns.
// It waits for no matching, only for other subscriptions to be registered.
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
	s := &Subscription{b: b, ch: make(chan Event, o.Buffer), wake: make(chan struct{}, 1)}
	s.patterns = slices.Clone(patterns)
	// Regexes last: a key that a cheap pattern matches needs no regex.
	slices.SortStableFunc(s.patterns, func(p, q *pattern.Pattern) int {
		return btoi(p.Kind() == pattern.Regex) - btoi(q.Kind() == pattern.Regex)
	})
	s.regex = s.patterns[len(s.patterns)-1].Kind() == pattern.Regex

	b.mu.Lock()
	defer b.mu.Unlock()
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
	if b.closed {
		return nil, ErrClosed
	}
	s.through = from
	b.subs[s] = struct{}{}
	b.nsubs.Store(int64(len(b.subs)))
	b.added = append(b.added, s)
	b.poke()
	return s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// matchesCheap reports whether key matches one of the patterns, none of
// them a regex.
func (s *Subscription) matchesCheap(key string) bool {
	for _, p := range s.patterns {
		if p.Match(key) {
			return true
		}
	}
	return false
}

// match reports whether key matches one of the patterns; it returns the
// first pattern that could not decide when none matched.
func (s *Subscription) match(key string) (bool, *pattern.Pattern) {
	var undecided *pattern.Pattern
	for _, p := range s.patterns {
		ok, err := p.TryMatch(key)
		if ok {
			return true, nil
		}
		if err != nil && undecided == nil {
			undecided = p
		}
	}
	return false, undecided
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

// Err returns why the subscription ended (ErrClosed, a *CompactedError, a
// *PatternTimeoutError), or nil while it runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Revision returns, once the subscription has ended, the revision through
// which every matching event was put into Events: after reading Events to
// its end, subscribe again with FromRevision set to it to go on exactly
// where this one stopped. While the subscription runs it returns 0.
func (s *Subscription) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		return 0
	}
	return s.through
}

// Close ends the subscription with ErrClosed and waits until it sends no
// more events. Events already in the channel stay there to be read.
// Closing twice does nothing.
func (s *Subscription) Close() error {
	s.mu.Lock()
	s.end(ErrClosed)
	exited := s.exited
	s.mu.Unlock()
	if exited != nil {
		<-exited
	}
	return nil
}

// end stops the subscription; s.mu is held.
func (s *Subscription) end(err error) {
	if s.ended {
		return
	}
	b := s.b
	s.ended, s.err = true, err
	if s.synced {
		s.synced = false
		s.through = max(s.through, b.cursor.Load())
	}
	close(s.ch)
	if s.kill != nil {
		close(s.kill)
		s.kill = nil
	}
	b.mu.Lock()
	delete(b.subs, s)
	b.nsubs.Store(int64(len(b.subs)))
	if !s.regex {
		b.removed = append(b.removed, s)
	}
	b.mu.Unlock()
	switch err.(type) {
	case *CompactedError:
		b.stats.compacted.Add(1)
	case *PatternTimeoutError:
		b.stats.timedOut.Add(1)
	}
}

// stop ends the subscription from its follower.
func (s *Subscription) stop(err error) {
	s.mu.Lock()
	s.end(err)
	s.mu.Unlock()
}

// poke tells the follower that the dispatcher's cursor moved.
func (s *Subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
