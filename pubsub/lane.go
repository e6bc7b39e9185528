package pubsub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/pattern"
)

// A lane follows the history and hands each published batch, in revision
// order, to the subscriptions of its kind that are in step with it. The
// broker has two: the cheap lane, one goroutine, serves the subscriptions
// without a regex, matching each key against all of them at once through
// a pattern.Index; the regex lane serves those with one, running a
// subscription's patterns only on the keys that the literal anchors of its
// patterns admit (a regex with none is run on every key). Either lane
// only offers events: a subscription without room falls behind, and a
// goroutine of its own feeds it from the history until it has caught up
// with its lane, which takes it back.
//
// The regex lane is a role, not a goroutine: one goroutine at a time holds
// it, and matches outside mu. A subscription whose matching of one batch
// takes longer than the lane's budget is detached from the lane and left
// to a goroutine of its own, which finishes that batch for it (or ends it
// on an undecided key) and then feeds it from the history, until it has
// matched handBackAfter batches in a row each within a quarter of the
// budget and caught up, when the lane takes it back (follow); the lane
// goes on with the other subscriptions and the later batches. Seen
// between two keys, by the holder's own check, the holder hands the
// subscription to a new goroutine and goes on; stuck on one key, seen by
// a watchdog timer, the holder keeps the subscription and the watchdog's
// goroutine goes on in the role, if it can take a matching turn for the
// holder (turns.go); if none is free the lane waits for that match to
// end. The detaching happens under mu and the subscription's lock, so
// one goroutine at a time sends to it. A regex that cannot decide, or one
// merely slow, thus delays the other regex subscriptions by about one
// budget plus the wait for the timer to run (up to a scheduler time
// slice, 10ms, while stuck regexes hold the cores) while a turn is free,
// and by its MatchTimeout tries when none is. None of it delays the cheap
// lane, writers or Subscribe.
type lane struct {
	b      *Broker
	budget atomic.Int64 // regex lane: the matching time (ns) one subscription may take for one batch; see budgetNow

	// mu guards the fields below and the markRev and markAt of the
	// lane's subscriptions. The cheap lane holds it while it handles a
	// batch; the regex lane only between two subscriptions' matching, so
	// that the watchdog can take the role over. A follower takes it to hand its
	// subscription back.
	mu        sync.Mutex
	index     *pattern.Index[*Subscription] // the lane's subscriptions, by their patterns
	followers map[*Subscription]struct{}    // the lane's subscriptions fed from the history by goroutines of their own
	holder    *work                         // regex lane: the state of the goroutine in the role
	handing   int64                         // regex lane: revision of the batch being handed out, 0 between batches
	dog       *time.Timer                   // regex lane: runs watch; armed while a batch is handed out
	hit       []hitList                     // cheap lane: the subscriptions the batch being delivered matches, and their events
	links     []hitLink                     // cheap lane: the events of the lists in hit

	// Guarded by Broker.mu.
	added   []*Subscription // subscribed, not yet taken in
	removed []*Subscription // ended, maybe still in index

	cursor atomic.Int64       // revision of the newest batch the lane has handled; written with mu held
	wake   chan struct{}      // Publish, Subscribe → lane, capacity 1
	flush  chan chan struct{} // Close → cheap lane: hand out every batch published, then close the channel sent; nil on the regex lane
}

// work is what the goroutine in the regex lane's role is doing: which
// batch it hands out and to which subscriptions. A takeover hands the
// batch, and the subscriptions after the one being matched, to a new work.
// Its fields are guarded by lane.mu, but keep, which only its goroutine
// uses.
type work struct {
	batch *Batch        // being handed out; nil between batches
	todo  []offerTo     // the subscriptions its anchors admit a key of
	next  int           // todo[next:] are still to be offered
	at    *Subscription // being matched, outside mu; nil if none
	since time.Time     // when the matching for at began
	armed bool          // the watchdog's timer is set for this batch
	keep  []int         // scratch: the events one subscription matched
	stop  follower      // at's, once the watchdog has detached it
	turn  bool          // the watchdog took a matching turn for at's goroutine
}

// offerTo is a subscription to offer a batch to, from the first event
// whose key its anchors admit.
type offerTo struct {
	s     *Subscription
	first int
}

// regexBudget is the regex lane's budget: see lane.
var regexBudget = time.Millisecond

// budgetNow returns the regex lane's budget. It is set when the lane is
// made; tests change it (SetLaneBudget).
func (l *lane) budgetNow() time.Duration { return time.Duration(l.budget.Load()) }

func newLane(b *Broker, regex bool, rev int64) *lane {
	l := &lane{
		b:         b,
		index:     pattern.NewIndex[*Subscription](),
		followers: make(map[*Subscription]struct{}),
		wake:      make(chan struct{}, 1),
	}
	l.budget.Store(int64(regexBudget))
	if regex {
		l.holder = &work{}
		l.dog = time.AfterFunc(time.Hour, l.watch)
		l.dog.Stop()
	} else {
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

// run is the cheap lane's goroutine: it hands out published batches until
// Close.
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
		batches, _ := b.hist.after(l.cursor.Load(), b.hist.last, fetchMax)
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
		b.regex.skipIdle(l.cursor.Load())
		l.handed()
	}
}

// handed lets the history drop what the lanes have handled, and tells the
// followers that the cursor moved.
func (l *lane) handed() {
	l.b.evict()
	l.mu.Lock()
	for s := range l.followers {
		s.poke()
	}
	l.mu.Unlock()
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
	if b.nregex.Load() == 0 && l.handing == 0 && l.cursor.Load() < rev {
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

// deliver offers one batch to every subscription in step that it
// matches; mu is held. The cheap lane's. One pass over the batch's keys,
// each looked up in the index, lists the events each subscription
// matches, in one array that the lists share: the batch costs a lookup a
// key and a step a match, whatever the number of patterns of a
// subscription (a watch of many keys), and however many subscriptions
// its keys match one each.
func (l *lane) deliver(batch *Batch) {
	for i := range batch.Events {
		l.index.Match(batch.Events[i].Key, func(s *Subscription) bool {
			if s.markRev != batch.Revision { // its first event of the batch
				s.markRev, s.markAt = batch.Revision, len(l.hit)
				l.hit = append(l.hit, hitList{s: s, first: int32(len(l.links))})
			}
			h := &l.hit[s.markAt]
			if h.n > 0 {
				if l.links[h.last].event == int32(i) {
					return true // another of its patterns matched this key
				}
				l.links[h.last].next = int32(len(l.links))
			}
			h.last, h.n = int32(len(l.links)), h.n+1
			l.links = append(l.links, hitLink{event: int32(i)})
			return true
		})
	}
	for j := range l.hit {
		l.offer(&l.hit[j], batch)
	}
	clear(l.hit)
	l.hit, l.links = l.hit[:0], l.links[:0]
	if cap(l.links) > hitsKept || cap(l.hit) > hitsKept {
		l.hit, l.links = nil, nil // a large batch's lists are not kept for good
	}
}

// hitsKept bounds the lists of events the cheap lane keeps for the next
// batch: the links, and the subscriptions.
const hitsKept = 4096

// hitList is the list of the events of a batch that one subscription
// matches, linked through lane.links, in order.
type hitList struct {
	s           *Subscription
	first, last int32 // in links
	n           int
}

// hitLink is one event of a hitList.
type hitLink struct {
	event int32 // its index in the batch
	next  int32 // the list's next link, if any
}

// offer puts the events of batch that h lists, which h.s matches, into
// its buffer, all of them, or, if there is no room for all, none: then
// it falls behind, and a goroutine of its own feeds it from the history,
// starting with this batch. mu is held.
func (l *lane) offer(h *hitList, batch *Batch) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.synced || s.ended || batch.Revision < s.sent.Revision {
		return
	}
	if cap(s.ch)-len(s.ch) < h.n {
		l.fallBehind(s, Position{Revision: batch.Revision})
		return
	}
	l.b.stats.delivered.Add(int64(h.n))
	k := h.first
	for left := h.n; left > 0; left-- {
		s.put(batch, int(l.links[k].event), left == 1)
		k = l.links[k].next
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
	f := l.addFollower(s)
	b.wg.Add(1)
	from, alone := s.sent, s.alone
	go func() {
		defer b.wg.Done()
		s.follow(from, alone, f)
	}()
}

// addFollower counts s among the subscriptions that a goroutine of their
// own feeds, and returns what stops that goroutine and says it has
// returned, which s's end and Close use from now on; mu and s.mu are held.
func (l *lane) addFollower(s *Subscription) follower {
	l.followers[s] = struct{}{}
	l.b.stats.following.Add(1)
	f := follower{kill: make(chan struct{}), exited: make(chan struct{})}
	s.kill, s.exited = f.kill, f.exited
	return f
}

// follower is what stops a goroutine that feeds one subscription (kill),
// and what says it has returned (exited).
type follower struct {
	kill, exited chan struct{}
}

// unfollow forgets the goroutine that fed s; mu is held.
func (l *lane) unfollow(s *Subscription) {
	if _, ok := l.followers[s]; ok {
		delete(l.followers, s)
		l.b.stats.following.Add(-1)
	}
}
