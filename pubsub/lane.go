package pubsub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/pattern"
)

// A lane follows the history and hands each published batch, in revision
// order, to the subscriptions of its kind that are in step with it. The
// broker has two, each one goroutine: the cheap lane serves the
// subscriptions without a regex, matching each key against all of them at
// once through a pattern.Index; the regex lane serves those with one,
// running a subscription's patterns only on the keys that the literal
// anchors of its patterns admit (a regex with none is run on every key).
// Either lane only offers events: a subscription without room falls
// behind, and a goroutine of its own feeds it from the history until it
// has caught up with its lane, which takes it back.
//
// On the regex lane, one subscription's regexes delay the others': a
// regex that cannot decide ends its subscription at once, so it costs the
// lane one MatchTimeout try (plus regexp2's clock) in its life; one whose
// matching of a batch takes longer than the lane's budget gets a goroutine
// of its own for good, so it costs the lane one budget (plus one match).
// Neither delays the cheap lane, writers or Subscribe.
type lane struct {
	b      *Broker
	regex  bool          // the regex lane
	budget time.Duration // regex lane: the matching time one subscription may take for one batch

	// mu is held while the lane handles one batch, and by a follower
	// handing its subscription back. It guards the fields below and the
	// markRev of the lane's subscriptions.
	mu        sync.Mutex
	index     *pattern.Index[*Subscription] // the lane's subscriptions, by their patterns
	followers map[*Subscription]struct{}    // the lane's subscriptions fed from the history by goroutines of their own
	keep      []int                         // the regex lane's scratch: the events one subscription matched

	// Guarded by Broker.mu.
	added   []*Subscription // subscribed, not yet taken in
	removed []*Subscription // ended, maybe still in index

	cursor atomic.Int64       // revision of the newest batch the lane has handled; written with mu held
	wake   chan struct{}      // Publish, Subscribe → lane, capacity 1
	flush  chan chan struct{} // Close → cheap lane: hand out every batch published, then close the channel sent; nil on the regex lane
}

// regexBudget is the regex lane's budget: see lane.
var regexBudget = time.Millisecond

func newLane(b *Broker, regex bool, rev int64) *lane {
	l := &lane{
		b:         b,
		regex:     regex,
		budget:    regexBudget,
		index:     pattern.NewIndex[*Subscription](),
		followers: make(map[*Subscription]struct{}),
		wake:      make(chan struct{}, 1),
	}
	if !regex {
		l.flush = make(chan chan struct{})
	}
	l.cursor.Store(rev)
	return l
}

// poke wakes the lane.
func (l *lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run hands out published batches until Close.
func (l *lane) run() {
	b := l.b
	defer b.wg.Done()
	for {
		var flushed chan struct{}
		select {
		case <-b.stop:
			return
		case <-l.wake:
		case flushed = <-l.flush:
		}
		l.mu.Lock()
		l.takeIn()
		l.mu.Unlock()
		l.catchUp()
		if flushed != nil {
			close(flushed)
		}
	}
}

// catchUp handles the batches after the cursor, up to the newest.
func (l *lane) catchUp() {
	b := l.b
	for {
		b.hmu.Lock()
		// The history keeps what the lanes have not handled.
		batches, _ := b.hist.after(l.cursor.Load(), b.hist.last, 64)
		b.hmu.Unlock()
		if len(batches) == 0 {
			return
		}
		for i := range batches {
			l.mu.Lock()
			if batches[i].Revision > l.cursor.Load() { // Publish may have handled it
				l.takeIn()
				l.deliver(&batches[i])
				l.cursor.Store(batches[i].Revision)
			}
			l.mu.Unlock()
		}
		if !l.regex {
			b.regex.skipIdle(l.cursor.Load())
		}
		b.evict()
		l.mu.Lock()
		for s := range l.followers {
			s.poke()
		}
		l.mu.Unlock()
	}
}

// skipIdle moves the regex lane's cursor up to rev when no subscription
// with a regex is open, so that the history need not keep batches for an
// idle lane that Publish does not wake.
func (l *lane) skipIdle(rev int64) {
	if l.cursor.Load() >= rev || !l.mu.TryLock() {
		return // it is ahead, or busy: then it catches up itself
	}
	b := l.b
	b.mu.Lock()
	if b.nregex.Load() == 0 && l.cursor.Load() < rev {
		l.cursor.Store(rev)
	}
	b.mu.Unlock()
	l.mu.Unlock()
}

// takeIn puts the new subscriptions into the index, or starts their
// goroutines, and takes the ended ones out; mu is held.
func (l *lane) takeIn() {
	b := l.b
	b.mu.Lock()
	added, removed := l.added, l.removed
	l.added, l.removed = nil, nil
	b.mu.Unlock()
	cursor := l.cursor.Load()
	for _, s := range added {
		s.mu.Lock()
		if !s.ended {
			for _, p := range s.patterns {
				l.index.Add(p, s)
			}
			if s.sent.Index == 0 && s.sent.Revision > cursor {
				s.synced = true // the lane sends it the batches from sent on
			} else {
				l.follow(s) // it needs batches the lane has handled
			}
		}
		s.mu.Unlock()
	}
	for _, s := range removed {
		for _, p := range s.patterns {
			l.index.Remove(p, s)
		}
	}
}

// deliver offers one batch to every subscription in step that it may
// match; mu is held.
func (l *lane) deliver(batch *Batch) {
	for i := range batch.Events {
		fn := func(s *Subscription) bool {
			if s.markRev == batch.Revision {
				return true // handled already: another of its patterns, or an earlier key
			}
			s.markRev = batch.Revision
			if l.regex {
				l.offerRegex(s, batch, i)
			} else {
				l.offer(s, batch, i)
			}
			return true
		}
		if l.regex {
			l.index.Candidates(batch.Events[i].Key, fn)
		} else {
			l.index.Match(batch.Events[i].Key, fn)
		}
	}
}

// offer puts the events of batch from first on that s matches into its
// buffer, all of them, or, if there is no room for all, none: then s falls
// behind, and a goroutine of its own feeds it from the history, starting
// with this batch. mu is held; s has no regex, so matching is cheap.
func (l *lane) offer(s *Subscription, batch *Batch, first int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced || s.ended || batch.Revision < s.sent.Revision {
		return
	}
	n := 1
	for _, e := range batch.Events[first+1:] {
		if s.matchesCheap(e.Key) {
			n++
		}
	}
	if cap(s.ch)-len(s.ch) < n {
		l.fallBehind(s, Position{Revision: batch.Revision})
		return
	}
	l.b.stats.delivered.Add(int64(n))
	for i := first; n > 0; i++ {
		if s.matchesCheap(batch.Events[i].Key) {
			n--
			s.put(batch, i, n == 0)
		}
	}
}

// offerRegex is offer for a subscription with a regex, whose anchors admit
// the key of event first: it matches the events from first on, outside
// s.mu, which Close and Position take. A key that no pattern matches and
// a regex could not decide on ends s before the batch, as on its own
// goroutine; matching that takes longer than the budget leaves the batch
// to a goroutine of its own, which feeds s from now on. mu is held.
func (l *lane) offerRegex(s *Subscription, batch *Batch, first int) {
	s.mu.Lock()
	ready := s.synced && !s.ended && batch.Revision >= s.sent.Revision
	s.mu.Unlock()
	if !ready {
		return
	}
	// Only the lane makes s fall behind, and it holds mu: until s.mu is
	// taken again, s can only end.
	keep := l.keep[:0]
	var undecided *pattern.Pattern
	at, slow := 0, false
	start := time.Now()
	for i := first; i < len(batch.Events); i++ {
		ok, u := s.match(batch.Events[i].Key)
		if u != nil {
			undecided, at = u, i
			break
		}
		if ok {
			keep = append(keep, i)
		}
		if time.Since(start) > l.budget {
			slow = true
			break
		}
	}
	l.keep = keep
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	before := Position{Revision: batch.Revision}
	switch {
	case undecided != nil:
		s.sent = later(s.sent, before) // nothing of the batch is in ch
		s.end(&PatternTimeoutError{Pattern: undecided.String(), Key: batch.Events[at].Key, Revision: batch.Revision})
	case slow:
		s.alone = true
		l.fallBehind(s, before)
	case cap(s.ch)-len(s.ch) < len(keep):
		l.fallBehind(s, before)
	default:
		l.b.stats.delivered.Add(int64(len(keep)))
		for j, i := range keep {
			s.put(batch, i, j == len(keep)-1)
		}
	}
}

// fallBehind hands s, in step until now, to a goroutine of its own that
// feeds it from the history from at; mu and s.mu are held.
func (l *lane) fallBehind(s *Subscription, at Position) {
	s.synced = false
	s.sent = later(s.sent, at)
	l.follow(s)
}

// follow starts the goroutine that feeds s from the history, from
// s.sent; mu and s.mu are held.
func (l *lane) follow(s *Subscription) {
	b := l.b
	l.followers[s] = struct{}{}
	b.stats.following.Add(1)
	kill, exited := make(chan struct{}), make(chan struct{})
	s.kill, s.exited = kill, exited
	b.wg.Add(1)
	from, alone := s.sent, s.alone
	go func() {
		defer b.wg.Done()
		s.follow(from, alone, kill, exited)
	}()
}

// unfollow forgets the goroutine that fed s; mu is held.
func (l *lane) unfollow(s *Subscription) {
	if _, ok := l.followers[s]; ok {
		delete(l.followers, s)
		l.b.stats.following.Add(-1)
	}
}
