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
// own feeds it from the history until it has caught up.
type Broker struct {
	hmu  sync.Mutex // guards hist
	hist history

	smu     sync.Mutex // guards the fields below and every Subscription's state
	cond    *sync.Cond // on smu; broadcast when cursor moves or a subscription ends
	index   *pattern.Index[*Subscription]
	subs    map[*Subscription]struct{}
	lagging map[*Subscription]struct{}
	cursor  atomic.Int64 // revision of the newest batch the dispatcher has handled; written under smu
	nsubs   atomic.Int64 // len(subs), for Publish to read without smu
	closed  bool
	wake    chan struct{} // Publish → dispatcher, capacity 1
	stop    chan struct{}
	wg      sync.WaitGroup // the dispatcher and catch-up goroutines
	stats   counters
}

type counters struct {
	published, delivered, compacted atomic.Int64
}

// Stats describe a broker at one moment.
type Stats struct {
	Subscriptions int   // open subscriptions
	CatchingUp    int   // subscriptions being fed from the history
	Published     int64 // events published
	Delivered     int64 // events put into subscriptions' buffers
	Compacted     int64 // subscriptions ended by ErrCompacted
	History       int   // events held in the history
	Oldest        int64 // the oldest revision a subscription can resume from
	Revision      int64 // newest revision published
}

// NewBroker returns a broker whose history starts after revision rev:
// subscriptions may resume from rev or later. Close stops it.
func NewBroker(rev int64, opts *Options) *Broker {
	b := &Broker{
		index:   pattern.NewIndex[*Subscription](),
		subs:    make(map[*Subscription]struct{}),
		lagging: make(map[*Subscription]struct{}),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	b.cond = sync.NewCond(&b.smu)
	b.cursor.Store(rev)
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
	b.hmu.Unlock()
	b.stats.published.Add(int64(len(batch.Events)))
	if b.nsubs.Load() == 0 && b.smu.TryLock() {
		// Nobody to deliver to: move the cursor here rather than wake
		// the dispatcher, which would cost the publisher a goroutine
		// wake-up (about 13% of a lone durable writer's time).
		done := len(b.subs) == 0 && b.cursor.Load() == prev
		if done {
			b.cursor.Store(batch.Revision)
			b.hmu.Lock()
			b.hist.evict(batch.Revision)
			b.hmu.Unlock()
			b.cond.Broadcast()
		}
		b.smu.Unlock()
		if done {
			return
		}
	}
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
		select {
		case <-b.stop:
			return
		case <-b.wake:
		}
		for {
			b.hmu.Lock()
			// The history keeps what the dispatcher has not handled.
			batches, _ := b.hist.after(b.cursor.Load(), b.hist.last, 64)
			b.hmu.Unlock()
			if len(batches) == 0 {
				break
			}
			b.smu.Lock()
			for i := range batches {
				if batches[i].Revision > b.cursor.Load() { // Publish may have handled it
					b.deliver(&batches[i])
				}
			}
			b.hmu.Lock()
			b.hist.evict(b.cursor.Load())
			oldest := b.hist.oldest()
			b.hmu.Unlock()
			b.expireLagging(oldest)
			b.cond.Broadcast()
			b.smu.Unlock()
		}
	}
}

// deliver sends one batch to every subscription in step that it matches;
// smu is held.
func (b *Broker) deliver(batch *Batch) {
	for i := range batch.Events {
		ev := &batch.Events[i]
		b.index.Match(ev.Key, func(s *Subscription) bool {
			if s.markRev == batch.Revision {
				return true // another of its patterns matched: counted already
			}
			s.markRev = batch.Revision
			if !s.synced || s.ended {
				return true
			}
			n := 1
			for _, e := range batch.Events[i+1:] {
				if s.matches(e.Key) {
					n++
				}
			}
			if cap(s.ch)-len(s.ch) < n {
				// No room for the whole transaction: fall behind and catch up
				// from the history, starting with this batch.
				s.synced = false
				s.next = batch.Revision
				b.startCatchUp(s)
				return true
			}
			for _, e := range batch.Events[i:] {
				if s.matches(e.Key) {
					s.ch <- e
				}
			}
			b.stats.delivered.Add(int64(n))
			return true
		})
	}
	b.cursor.Store(batch.Revision)
}

// expireLagging ends the subscriptions behind the history; smu is held.
func (b *Broker) expireLagging(oldest int64) {
	for s := range b.lagging {
		if s.fetched.Load() < oldest {
			s.end(&CompactedError{Revision: s.fetched.Load(), Oldest: oldest})
		}
	}
}

func (b *Broker) startCatchUp(s *Subscription) {
	b.lagging[s] = struct{}{}
	s.fetched.Store(s.next - 1)
	s.catching = true
	s.kill = make(chan struct{})
	s.exited = make(chan struct{})
	b.wg.Add(1)
	go s.catchUp()
}

// Stats returns counters that describe the broker.
func (b *Broker) Stats() Stats {
	b.smu.Lock()
	st := Stats{Subscriptions: len(b.subs), CatchingUp: len(b.lagging)}
	b.smu.Unlock()
	b.hmu.Lock()
	st.History, st.Revision, st.Oldest = b.hist.events, b.hist.last, b.hist.oldest()
	b.hmu.Unlock()
	st.Published = b.stats.published.Load()
	st.Delivered = b.stats.delivered.Load()
	st.Compacted = b.stats.compacted.Load()
	return st
}

// Close ends every subscription with ErrClosed and waits for the broker's
// goroutines. Closing twice does nothing.
func (b *Broker) Close() {
	b.smu.Lock()
	if b.closed {
		b.smu.Unlock()
		return
	}
	b.closed = true
	for s := range b.subs {
		s.end(ErrClosed)
	}
	b.cond.Broadcast()
	b.smu.Unlock()
	close(b.stop)
	b.wg.Wait()
}
