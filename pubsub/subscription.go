package pubsub

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/livekv/livekv/internal/ring"
	"github.com/livekv/livekv/pattern"
)

// SubscribeOptions modify a subscription. A nil *SubscribeOptions means the
// defaults.
type SubscribeOptions struct {
	// FromRevision, when above 0, asks for every matching event with a
	// greater revision, then the live ones, with no gap between: it is
	// From: Position{Revision: FromRevision + 1}. Resuming needs the
	// history to hold every revision after FromRevision (it is at least
	// CompactedError.Oldest - 1); if not, Subscribe returns a
	// *CompactedError. 0 means from now: events of revisions published
	// after Subscribe, not those after revision 0 (From: After(0)).
	FromRevision int64

	// From, when its Revision is above 0, asks for every matching event
	// from that position on (see Position), such as the one a closed
	// subscription's Position returned: the two streams join without a
	// gap or a duplicate, even inside a transaction. It cannot be combined
	// with FromRevision.
	From Position

	// Buffer is how many events the Events channel holds. A subscription
	// whose buffer is full falls behind and catches up from the history;
	// it never makes a writer wait. Default 256; at most MaxBuffer, since
	// the channel is made whole at once: a larger one is
	// ErrInvalidOptions.
	Buffer int

	// Filter, when not nil, is asked about a key before a costly pattern
	// of the subscription (pattern.Costly: a regex, a long glob) runs on
	// it: a key it refuses is one that no costly pattern matches. A
	// caller that drops the events of some keys (those its reader may not
	// see) refuses them here, so that how a pattern its reader chose fares
	// on such a key (its time, running out of it, which ends the
	// subscription with a *PatternTimeoutError naming the revision) tells
	// the reader nothing of the key. A cheap pattern may still deliver a
	// key Filter refuses: the caller checks the keys it gets. Filter runs
	// in the broker's goroutines, for many keys: it must be quick and
	// safe for concurrent use.
	Filter func(key string) bool
}

// Start returns the position a subscription with these options starts at,
// Revision 0 for now, or, for options that make no sense, an error that
// wraps ErrInvalidOptions.
func (o SubscribeOptions) Start() (Position, error) {
	start := o.From
	switch {
	case o.FromRevision < 0 || start.Revision < 0 || start.Index < 0:
		return Position{}, fmt.Errorf("%w: negative FromRevision %d or From %+v", ErrInvalidOptions, o.FromRevision, start)
	case o.FromRevision > 0 && start != Position{}:
		return Position{}, fmt.Errorf("%w: both FromRevision and From", ErrInvalidOptions)
	case start.Revision == 0 && start.Index != 0:
		return Position{}, fmt.Errorf("%w: From %+v has an index but no revision", ErrInvalidOptions, start)
	case o.Buffer > MaxBuffer:
		return Position{}, fmt.Errorf("%w: Buffer %d is over %d", ErrInvalidOptions, o.Buffer, MaxBuffer)
	case o.FromRevision == math.MaxInt64:
		// No revision comes after it, nor a position to start from.
		return Position{}, fmt.Errorf("%w: FromRevision %d: no revision comes after it", ErrInvalidOptions, o.FromRevision)
	case o.FromRevision > 0:
		start = Position{Revision: o.FromRevision + 1}
	}
	return start, nil
}

// Subscription receives the events whose keys match its patterns: in
// revision order, each once, without gaps, the events of one transaction
// one after another. It ends on Close, when the broker closes, when it
// falls behind the history (ErrCompacted), or when one of its regexes
// cannot decide whether a key matches (ErrPatternTimeout); then Events is
// closed and Err says why.
type Subscription struct {
	b        *Broker
	patterns []*pattern.Pattern       // those that cannot run out of time first
	cheap    *pattern.Index[struct{}] // the patterns before the costly ones, when there are many; else nil
	ncheap   int                      // how many patterns cheap holds
	regex    bool                     // a costly pattern (pattern.Costly: a regex, a long glob) is among them: the regex lane serves it
	filter   func(string) bool        // SubscribeOptions.Filter: asked before a costly pattern runs; nil lets every key through
	lane     *lane                    // the lane that serves it
	ch       chan Event
	wake     chan struct{} // lane → follower: the cursor moved; capacity 1
	room     chan struct{} // Next → follower: an event was taken; capacity 1
	roomWait atomic.Bool   // the follower waits for room: Next signals room
	stopped  atomic.Bool   // set by end, read without mu: whoever matches for it stops between two patterns (match)

	// mu guards the fields below and every send on ch, so that a send
	// never meets a closed channel: ch is closed under mu.
	mu     sync.Mutex
	synced bool // its lane sends to it
	alone  bool // its regexes were slow: a goroutine of its own feeds it until they are fast again (follow)

	ended  bool                // no more events will be sent
	err    error               // why it ended
	sent   Position            // every matching event before it is in ch (synced: or up to the cursor)
	inCh   ring.Ring[Position] // the positions of the events that may still be in ch, oldest first
	kill   chan struct{}       // closed to stop the follower
	exited chan struct{}       // closed when the follower returns

	markRev int64 // guarded by lane.mu: last batch the lane offered it
	markAt  int   // guarded by lane.mu: the cheap lane's: its list in lane.hit for the batch markRev

	scratch []int // the follower's
}

// Subscribe starts a subscription to the keys that match any of patterns.
// It waits for no matching, only for other subscriptions to be registered.
func (b *Broker) Subscribe(patterns []*pattern.Pattern, opts *SubscribeOptions) (*Subscription, error) {
	if len(patterns) == 0 {
		return nil, ErrNoPatterns
	}
	if i := slices.Index(patterns, nil); i >= 0 {
		return nil, fmt.Errorf("%w: pattern %d is nil", ErrInvalidOptions, i)
	}
	o := SubscribeOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	start, err := o.Start()
	if err != nil {
		return nil, err
	}
	s := &Subscription{b: b, ch: make(chan Event, o.Buffer), wake: make(chan struct{}, 1), room: make(chan struct{}, 1), filter: o.Filter}
	s.patterns = slices.Clone(patterns)
	// Costly patterns (regexes, long globs) last: a key that a cheap
	// pattern matches needs none of them.
	slices.SortStableFunc(s.patterns, func(p, q *pattern.Pattern) int {
		return btoi(p.Costly()) - btoi(q.Costly())
	})
	s.regex = s.patterns[len(s.patterns)-1].Costly()
	ncheap := len(s.patterns)
	if n := slices.IndexFunc(s.patterns, (*pattern.Pattern).Costly); n >= 0 {
		ncheap = n
	}
	if ncheap > indexedPatterns {
		// Many keys, say: each key is looked up, not matched against
		// each pattern.
		s.cheap, s.ncheap = pattern.NewIndex[struct{}](), ncheap
		for _, p := range s.patterns[:ncheap] {
			s.cheap.Add(p, struct{}{})
		}
	}
	s.lane = b.cheap
	if s.regex {
		s.lane = b.regex
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed { // first: a closed broker is not one to resume from
		return nil, ErrClosed
	}
	b.hmu.Lock()
	last, oldest := b.hist.last, b.hist.oldest()
	b.hmu.Unlock()
	if start.Revision == 0 {
		start = Position{Revision: last + 1}
	}
	if start.Revision < oldest {
		return nil, &CompactedError{Revision: start.Revision - 1, Oldest: oldest}
	}
	s.sent = start
	b.subs[s] = struct{}{}
	b.nsubs.Store(int64(len(b.subs)))
	if s.regex {
		b.nregex.Add(1)
	}
	s.lane.added = append(s.lane.added, s)
	s.lane.poke()
	return s, nil
}

// indexedPatterns is how many patterns that cannot run out of time a
// subscription may have and still match them one by one: with more, it
// looks a key up in an index of them (match).
const indexedPatterns = 16

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// match reports whether key matches one of the patterns; it returns the
// first pattern that could not decide when none matched, twice: the
// subscription ends for it (pattern.MatchAnyTwice, but for this): once
// the subscription has ended, it stops between two patterns (killed
// true), since a key that none of many regexes can decide costs two
// tries of each, which Close must not wait for. A key the filter refuses
// is matched by the cheap patterns only, which come first: many of them
// through an index, a lookup rather than a match of each.
func (s *Subscription) match(key string) (ok bool, undecided *pattern.Pattern, killed bool) {
	pats := s.patterns
	if s.cheap != nil {
		if s.stopped.Load() {
			return false, nil, true
		}
		s.cheap.Match(key, func(struct{}) bool {
			ok = true
			return false
		})
		if ok {
			return true, nil, false
		}
		pats = pats[s.ncheap:]
	}
	filtered := s.filter == nil
	for range 2 {
		undecided = nil
		for _, p := range pats {
			if s.stopped.Load() {
				return false, nil, true
			}
			if !filtered && p.Costly() {
				if !s.filter(key) {
					return false, nil, false
				}
				filtered = true
			}
			ok, err := p.TryMatch(key)
			if ok {
				return true, nil, false
			}
			if err != nil && undecided == nil {
				undecided = p
			}
		}
		if undecided == nil {
			return false, nil, false
		}
	}
	return false, undecided, false
}

// Events returns the channel that delivers the subscription's events. It is
// closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Next waits for the next event. After the subscription ends and its
// buffered events are read, it returns the reason (Err); it returns
// ctx.Err() if ctx ends first. A reader that falls behind is fed from
// the history by a goroutine of the subscription's, which Next wakes as
// it takes an event; one that reads Events instead is looked at for room
// after a millisecond, then ever less often.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-s.ch:
		if !ok {
			return Event{}, s.Err()
		}
		if s.roomWait.Load() {
			select {
			case s.room <- struct{}{}:
			default:
			}
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

// Position returns where the reader is: just before the first event it
// has not taken from Events (or Next), which is just after the last one
// it took, or further on when later transactions had nothing for it.
// Subscribing again with From set to it goes on exactly where this
// subscription's reader stopped, even inside a transaction that a Close
// cut: events left unread in the buffer come again. Taken after Close (or
// after the subscription ended), it does not move unless the reader takes
// more of the buffered events; taken while the subscription runs, it is a
// moment's, and the reader may be further on already.
func (s *Subscription) Position() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if unread := len(s.ch); unread > 0 {
		// Sends happen under mu: the unread events are the newest in inCh.
		s.inCh.Trim(unread)
		return *s.inCh.At(0)
	}
	if s.synced {
		return later(s.sent, Position{Revision: s.lane.cursor.Load() + 1})
	}
	return s.sent
}

// Revision returns the newest revision all of whose matching events the
// reader has taken: Position().Revision - 1, 0 before any change.
// Subscribing again with From: After(Revision()) goes on after that
// revision, which repeats the events the reader took of a transaction
// that Close cut; From: Position() does not. (FromRevision set to it does
// the same, but for 0, which it takes for now: changes made meanwhile
// would be missed.)
func (s *Subscription) Revision() int64 { return s.Position().Revision - 1 }

// put sends the event of batch at index i, the last of the batch that s
// matches if last; s.mu is held and ch has room.
func (s *Subscription) put(batch *Batch, i int, last bool) {
	ev := batch.Events[i]
	ev.Index = i
	s.inCh.Trim(len(s.ch)) // the others have been read
	s.inCh.Push(Position{Revision: batch.Revision, Index: i})
	s.ch <- ev // the room stays: only one goroutine sends at a time, under mu
	s.sent = Position{Revision: batch.Revision, Index: i + 1}
	if last {
		s.sent = Position{Revision: batch.Revision + 1} // the rest does not match
	}
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

// CloseWith ends the subscription as Close does, but with err, which Err
// and Next then return: a replica that lost its leader ends its
// subscriptions with a reason to resume elsewhere rather than ErrClosed.
// A nil err is ErrClosed.
func (s *Subscription) CloseWith(err error) error {
	if err == nil {
		err = ErrClosed
	}
	s.mu.Lock()
	s.end(err)
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
	s.stopped.Store(true)
	if s.synced {
		s.synced = false
		s.sent = later(s.sent, Position{Revision: s.lane.cursor.Load() + 1})
	}
	close(s.ch)
	if s.kill != nil {
		close(s.kill)
		s.kill = nil
	}
	b.mu.Lock()
	delete(b.subs, s)
	b.nsubs.Store(int64(len(b.subs)))
	if s.regex {
		b.nregex.Add(-1)
	}
	s.lane.removed = append(s.lane.removed, s)
	b.mu.Unlock()
	// The lane takes s out of its index when it wakes; no batch may come
	// to wake it, and until then the index keeps s and what it buffers.
	s.lane.poke()
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

// poke tells the follower that its lane's cursor moved.
func (s *Subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
