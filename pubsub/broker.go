package pubsub

import (
	"sync"
	"sync/atomic"

	"github.com/livekv/livekv/pattern"
)

// Options configure a Broker. The zero value of each field means its
// default.
type Options struct {
	// HistoryEvents bounds the events kept for catching up and resuming.
	// Default 100,000.
	HistoryEvents int

	// HistoryBytes bounds the memory the history holds (keys, values and
	// about 64 bytes an event). Default 64 MiB.
	HistoryBytes int64
}

// Defaults of Options and SubscribeOptions.
const (
	DefaultHistoryEvents = 100_000
	DefaultHistoryBytes  = 64 << 20
	DefaultBuffer        = 256
)

// Broker hands committed batches to the subscriptions whose patterns match
// their keys. Publish never waits for a subscriber: one dispatcher goroutine
// matches events (through a pattern.Index) and sends them without blocking;
// a subscription whose buffer is full falls behind and a goroutine of its
// own feeds it from the history until it has caught up. A subscription with
// a regex pattern is always fed by a goroutine of its own, which runs its
// regexes: what a regex costs falls on its own subscription.
//
// Lock order: a lock may be taken while holding those to its left, never
// the reverse: dmu → Subscription.mu → mu → hmu. Matching holds none of
// them but dmu, which only the dispatcher and hand-backs take: Subscribe,
// Publish and Close never wait for matching.
type Broker struct {
	// dmu is held by the dispatcher while it handles one batch; a
	// catch-up goroutine takes it to hand its subscription back. It
	// guards index, followers and every Subscription's markRev.
	dmu       sync.Mutex
	index     *pattern.Index[*Subscription] // subscriptions without a regex
	followers map[*Subscription]struct{}    // fed from the history by goroutines of their own

	mu      sync.Mutex // guards the fields below
	closed  bool
	subs    map[*Subscription]struct{} // open subscriptions
	added   []*Subscription            // subscribed, not yet taken in by the dispatcher
	removed []*Subscription            // ended, maybe still in index
	nsubs   atomic.Int64               // len(subs), for Publish to read without mu

	hmu     sync.Mutex // guards hist
	hist    history
	evicted atomic.Int64 // hist.evicted, for followers to read without hmu

	cursor atomic.Int64       // revision of the newest batch the dispatcher has handled; written with dmu held
	wake   chan struct{}      // Publish, Subscribe → dispatcher, capacity 1
	flush  chan chan struct{} // Close → dispatcher: hand out every batch published, then close the channel sent
	stop   chan struct{}
	wg     sync.WaitGroup // the dispatcher and the followers
	stats  counters
}

type counters struct {
	published, delivered, compacted, timedOut, following atomic.Int64
}

// Stats describe a broker at one moment.
type Stats struct {
	Subscriptions int   // open subscriptions
	CatchingUp    int   // subscriptions being fed from the history (all of those with a regex)
	Published     int64 // events published
	Delivered     int64 // events put into subscriptions' buffers
	Compacted     int64 // subscriptions ended by ErrCompacted
	TimedOut      int64 // subscriptions ended by ErrPatternTimeout
	History       int   // events held in the history
	Oldest        int64 // the oldest revision the history holds (see Broker.Oldest)
	Revision      int64 // newest revision published
}

// NewBroker returns a broker whose history starts after revision rev:
// subscriptions may resume from rev or later. Close stops it.
func NewBroker(rev int64, opts *Options) *Broker {
	b := &Broker{
		index:     pattern.NewIndex[*Subscription](),
		followers: make(map[*Subscription]struct{}),
		subs:      make(map[*Subscription]struct{}),
		wake:      make(chan struct{}, 1),
		flush:     make(chan chan struct{}),
		stop:      make(chan struct{}),
	}
	b.cursor.Store(rev)
	b.evicted.Store(rev)
	b.hist = history{last: rev, evicted: rev, maxEvents: DefaultHistoryEvents, maxBytes: DefaultHistoryBytes}
	if opts != nil && opts.HistoryEvents > 0 {
		b.hist.maxEvents = opts.HistoryEvents
	}
	if opts != nil && opts.HistoryBytes > 0 {
		b.hist.maxBytes = opts.HistoryBytes
	}
	b.wg.Add(1)
	go b.dispatch()
	return b
}

// Publish hands the broker a committed batch. Batches must come in
// increasing revision order. Publish does not wait for subscribers; the
// broker keeps b.Events, which must not change afterwards.
func (b *Broker) Publish(batch Batch) {
	b.hmu.Lock()
	if batch.Revision <= b.hist.last {
		b.hmu.Unlock()
		panic("pubsub: batches published out of revision order")
	}
	prev := b.hist.last
	b.hist.add(batch, b.cursor.Load())
	b.evicted.Store(b.hist.evicted)
	b.hmu.Unlock()
	b.stats.published.Add(int64(len(batch.Events)))
	if b.nsubs.Load() == 0 && b.dmu.TryLock() {
		// Nobody to deliver to: move the cursor here rather than wake
		// the dispatcher, which would cost the publisher a goroutine
		// wake-up (about 13% of a lone durable writer's time). mu keeps
		// Subscribe out meanwhile; neither lock is ever held long.
		done := false
		if b.mu.TryLock() {
			done = len(b.subs) == 0 && b.cursor.Load() == prev
			if done {
				b.cursor.Store(batch.Revision)
				b.hmu.Lock()
				b.hist.evict(batch.Revision)
				b.evicted.Store(b.hist.evicted)
				b.hmu.Unlock()
			}
			b.mu.Unlock()
		}
		b.dmu.Unlock()
		if done {
			return
		}
	}
	b.poke()
}

// poke wakes the dispatcher.
func (b *Broker) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// dispatch delivers published batches to the subscriptions that are in
// step, in revision order, until Close.
func (b *Broker) dispatch() {
	defer b.wg.Done()
	for {
		var flushed chan struct{}
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case flushed = <-b.flush:
		}
		b.dmu.Lock()
		b.takeIn()
		b.dmu.Unlock()
		for {
			b.hmu.Lock()
			// The history keeps what the dispatcher has not handled.
			batches, _ := b.hist.after(b.cursor.Load(), b.hist.last, 64)
			b.hmu.Unlock()
			if len(batches) == 0 {
				break
			}
			for i := range batches {
				b.dmu.Lock()
				if batches[i].Revision > b.cursor.Load() { // Publish may have handled it
					b.takeIn()
					b.deliver(&batches[i])
					b.cursor.Store(batches[i].Revision)
				}
				b.dmu.Unlock()
			}
			b.hmu.Lock()
			b.hist.evict(b.cursor.Load())
			b.evicted.Store(b.hist.evicted)
			b.hmu.Unlock()
			b.dmu.Lock()
			for s := range b.followers {
				s.poke()
			}
			b.dmu.Unlock()
		}
		if flushed != nil {
			close(flushed)
		}
	}
}

// takeIn puts the new subscriptions into the index, or starts their
// goroutines, and takes the ended ones out; dmu is held.
func (b *Broker) takeIn() {
	b.mu.Lock()
	added, removed := b.added, b.removed
	b.added, b.removed = nil, nil
	b.mu.Unlock()
	cursor := b.cursor.Load()
	for _, s := range added {
		s.mu.Lock()
		switch {
		case s.ended:
		case s.regex:
			b.follow(s)
		default:
			for _, p := range s.patterns {
				b.index.Add(p, s)
			}
			if s.sent.Index == 0 && s.sent.Revision > cursor {
				s.synced = true // the dispatcher sends it the batches from sent on
			} else {
				b.follow(s) // it needs batches the dispatcher has handled
			}
		}
		s.mu.Unlock()
	}
	for _, s := range removed {
		for _, p := range s.patterns {
			b.index.Remove(p, s)
		}
	}
}

// deliver sends one batch to every subscription in step that it matches;
// dmu is held.
func (b *Broker) deliver(batch *Batch) {
	for i := range batch.Events {
		b.index.Match(batch.Events[i].Key, func(s *Subscription) bool {
			if s.markRev == batch.Revision {
				return true // another of its patterns matched: handled already
			}
			s.markRev = batch.Revision
			b.offer(s, batch, i)
			return true
		})
	}
}

// offer puts the events of batch from first on that s matches into its
// buffer, all of them, or, if there is no room for all, none: then s falls
// behind, and a goroutine of its own feeds it from the history, starting
// with this batch. dmu is held; s has no regex, so matching is cheap.
func (b *Broker) offer(s *Subscription, batch *Batch, first int) {
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
		s.synced = false
		s.sent = later(s.sent, Position{Revision: batch.Revision})
		b.follow(s)
		return
	}
	b.stats.delivered.Add(int64(n))
	for i := first; n > 0; i++ {
		if s.matchesCheap(batch.Events[i].Key) {
			n--
			s.put(batch, i, n == 0)
		}
	}
}

// follow starts the goroutine that feeds s from the history, from
// s.sent; dmu and s.mu are held.
func (b *Broker) follow(s *Subscription) {
	b.followers[s] = struct{}{}
	b.stats.following.Add(1)
	s.kill = make(chan struct{})
	s.exited = make(chan struct{})
	b.wg.Add(1)
	go s.follow(s.sent, s.kill, s.exited)
}

// unfollow forgets the goroutine that fed s; dmu is held.
func (b *Broker) unfollow(s *Subscription) {
	if _, ok := b.followers[s]; ok {
		delete(b.followers, s)
		b.stats.following.Add(-1)
	}
}

// Stats returns counters that describe the broker.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	st := Stats{Subscriptions: len(b.subs)}
	b.mu.Unlock()
	b.hmu.Lock()
	st.History, st.Revision, st.Oldest = b.hist.events, b.hist.last, b.hist.oldest()
	b.hmu.Unlock()
	st.CatchingUp = int(b.stats.following.Load())
	st.Published = b.stats.published.Load()
	st.Delivered = b.stats.delivered.Load()
	st.Compacted = b.stats.compacted.Load()
	st.TimedOut = b.stats.timedOut.Load()
	return st
}

// Close ends every subscription with ErrClosed and waits for the broker's
// goroutines. First the dispatcher hands out every batch published, so a
// subscription in step gets every event before it ends; it never waits for
// a subscriber, so this is quick. One being fed from the history (it fell
// behind, or has a regex pattern) ends where it got to: its Position says
// where to resume. Closing twice does nothing.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	flushed := make(chan struct{})
	b.flush <- flushed // the dispatcher runs until stop is closed, below
	<-flushed
	b.mu.Lock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.end(ErrClosed)
		s.mu.Unlock()
	}
	close(b.stop)
	b.wg.Wait()
}
