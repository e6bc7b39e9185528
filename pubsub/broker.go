package pubsub

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Options configure a Broker. The zero value of each field means its
// default.
type Options struct {
	// HistoryEvents bounds the events kept for catching up and resuming.
	// Default 100,000.
	HistoryEvents int

	// HistoryBytes bounds the memory the history holds (keys, values and
	// the events themselves, 80 bytes each on 64-bit machines). Default
	// 64 MiB.
	HistoryBytes int64
}

// Defaults of Options and SubscribeOptions.
const (
	DefaultHistoryEvents = 100_000
	DefaultHistoryBytes  = 64 << 20
	DefaultBuffer        = 256
)

// MaxBuffer is the largest SubscribeOptions.Buffer, 1,048,576 events: the
// channel is made whole when the subscription is, about 80 MiB of it at
// that size on a 64-bit machine.
const MaxBuffer = 1 << 20

// Broker hands committed batches to the subscriptions whose patterns match
// their keys. Publish never waits for a subscriber: two lanes follow the
// history and send the events without blocking, the cheap lane to the
// subscriptions without a regex and the regex lane to those with one (see
// lane); a subscription whose buffer is full falls behind and a goroutine
// of its own feeds it from the history until it has caught up with its
// lane. What a regex costs falls on its own subscription: past the regex
// lane's budget, the lane goes on in another goroutine and leaves the
// subscription to the one matching it. It never falls on the others or
// on writers.
//
// Lock order: a lock may be taken while holding those to its left, never
// the reverse: cheap.mu → regex.mu → Subscription.mu → mu → hmu. A lane's
// goroutines, its watchdog and the followers take only their own lane's
// mu, except that the cheap lane may TryLock regex.mu (skipIdle); Publish
// takes both, with TryLock, when nobody is subscribed. The
// cheap lane matches holding its mu (its matching is cheap); the regex
// lane matches holding no lock, so that its watchdog can take the lane
// over from a stuck match. Subscribe, Publish and Close never wait for
// matching.
type Broker struct {
	cheap *lane // the subscriptions without a regex
	regex *lane // the subscriptions with one

	mu     sync.Mutex // guards the fields below, and the lanes' added and removed
	closed bool
	subs   map[*Subscription]struct{} // open subscriptions
	nsubs  atomic.Int64               // len(subs), for Publish to read without mu
	nregex atomic.Int64               // how many of subs have a regex; written with mu held

	hmu     sync.Mutex // guards hist
	hist    history
	evicted atomic.Int64 // hist.evicted, for followers to read without hmu

	// matching holds a token for each goroutine matching regexes outside
	// the regex lane (see turns.go).
	matching chan struct{}

	stop  chan struct{}
	wg    sync.WaitGroup // the lanes and the followers
	done  chan struct{}  // closed when the first Close has seen them end
	stats counters
}

type counters struct {
	published, delivered, compacted, timedOut, following atomic.Int64
	roomLooks                                            atomic.Int64 // followers' looks for room in a full buffer, for tests
}

// Stats describe a broker at one moment.
type Stats struct {
	Subscriptions int   // open subscriptions
	CatchingUp    int   // subscriptions being fed from the history by goroutines of their own
	Published     int64 // events published
	Delivered     int64 // events put into subscriptions' buffers
	Compacted     int64 // subscriptions ended by ErrCompacted
	TimedOut      int64 // subscriptions ended by ErrPatternTimeout
	History       int   // events held in the history
	Oldest        int64 // the oldest revision the history holds, or the next to come (see Broker.Oldest)
	Revision      int64 // newest revision published
	// MaxLag is how many revisions the furthest behind of the open
	// subscriptions' readers is behind Revision (see Subscription.Revision).
	MaxLag int64
}

// NewBroker returns a broker whose history starts after revision rev:
// subscriptions may resume from rev or later. Close stops it.
func NewBroker(rev int64, opts *Options) *Broker {
	b := &Broker{
		subs:     make(map[*Subscription]struct{}),
		matching: make(chan struct{}, matchTurns(runtime.GOMAXPROCS(0))),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.cheap, b.regex = newLane(b, false, rev), newLane(b, true, rev)
	b.evicted.Store(rev)
	b.hist = history{last: rev, evicted: rev, maxEvents: DefaultHistoryEvents, maxBytes: DefaultHistoryBytes}
	if opts != nil && opts.HistoryEvents > 0 {
		b.hist.maxEvents = opts.HistoryEvents
	}
	if opts != nil && opts.HistoryBytes > 0 {
		b.hist.maxBytes = opts.HistoryBytes
	}
	b.wg.Add(2)
	go b.cheap.run()
	go b.regex.runRegex(b.regex.holder)
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
	b.hist.add(batch, b.handled())
	b.evicted.Store(b.hist.evicted)
	b.hmu.Unlock()
	b.stats.published.Add(int64(len(batch.Events)))
	if b.nsubs.Load() == 0 && b.cheap.mu.TryLock() {
		// Nobody to deliver to: move the cursors here rather than wake
		// the lanes, which would cost the publisher a goroutine wake-up
		// (BenchmarkDB_Set_Subscribers with 0 subscriptions shows it).
		// mu keeps
		// Subscribe out meanwhile; none of the locks is ever held long.
		done := false
		if b.regex.mu.TryLock() {
			if b.mu.TryLock() {
				done = len(b.subs) == 0 && b.cheap.cursor.Load() == prev && b.regex.handing == 0
				if done {
					b.cheap.cursor.Store(batch.Revision)
					b.regex.cursor.Store(batch.Revision) // nobody has a regex: skip what it had left
					b.evict()
				}
				b.mu.Unlock()
			}
			b.regex.mu.Unlock()
		}
		b.cheap.mu.Unlock()
		if done {
			return
		}
	}
	// The regex lane first: the lane poked last runs first on this
	// core, and the cheap one is what the other subscribers wait for.
	if b.nregex.Load() > 0 {
		b.regex.poke()
	}
	b.cheap.poke()
}

// handled returns the newest revision both lanes have handled: the
// history keeps every batch after it.
func (b *Broker) handled() int64 { return min(b.cheap.cursor.Load(), b.regex.cursor.Load()) }

// evict drops the batches beyond the history's limits that both lanes
// have handled.
func (b *Broker) evict() {
	b.hmu.Lock()
	b.hist.evict(b.handled())
	b.evicted.Store(b.hist.evicted)
	b.hmu.Unlock()
}

// Stats returns counters that describe the broker.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	st := Stats{Subscriptions: len(b.subs)}
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	b.hmu.Lock()
	st.History, st.Revision, st.Oldest = b.hist.events, b.hist.last, b.hist.oldest()
	b.hmu.Unlock()
	for _, s := range subs {
		st.MaxLag = max(st.MaxLag, st.Revision-s.Revision())
	}
	st.CatchingUp = int(b.stats.following.Load())
	st.Published = b.stats.published.Load()
	st.Delivered = b.stats.delivered.Load()
	st.Compacted = b.stats.compacted.Load()
	st.TimedOut = b.stats.timedOut.Load()
	return st
}

// Close ends every subscription with ErrClosed and waits for the broker's
// goroutines. First the cheap lane hands out every batch published, so a
// subscription without a regex that is in step gets every event before it
// ends; that lane never waits for a subscriber, so this is quick. The
// others end where they got to: one being fed from the history (it fell
// behind) and one with a regex pattern, since waiting for them could wait
// for their readers, or their regexes. Its Position says where to resume.
// A second Close does nothing more, and returns once the first has.
func (b *Broker) Close() { b.CloseWith(ErrClosed) }

// CloseWith closes the broker as Close does, but ends the subscriptions
// with err rather than ErrClosed: a database whose state was replaced
// ends them with a *CompactedError, since the history they follow is
// gone.
func (b *Broker) CloseWith(err error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return
	}
	b.closed = true
	b.mu.Unlock()
	flushed := make(chan struct{})
	b.cheap.flush <- flushed // the lane runs until stop is closed, below
	<-flushed
	b.mu.Lock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.end(err)
		s.mu.Unlock()
	}
	close(b.stop)
	b.wg.Wait()
	close(b.done)
}
