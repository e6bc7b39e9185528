package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// Event is one committed change of a key a subscription matches.
type Event struct {
	Key      string
	Value    string // the value after the change; "" when Deleted
	Deleted  bool   // the key was deleted or expired
	Revision int64  // the revision of the transaction that made the change
	Time     time.Time
}

// SubscribeOptions modify a subscription. A nil *SubscribeOptions means
// live changes from now on.
type SubscribeOptions struct {
	// FromRevision, when above 0, asks for every matching change after
	// that revision, then the live ones. A revision older than the
	// server's history holds is an error that errors.Is recognises as
	// engine.ErrCompacted. 0 means from now, not after revision 0: a
	// revision held that is 0 (a server with no change yet) resumes with
	// Initial instead, which reads the items and goes on after them.
	FromRevision int64

	// Initial asks for the matching items first (Subscription.Initial),
	// then the changes not already in them. It cannot be combined with
	// FromRevision.
	Initial bool

	// Buffer is how many events the client holds for a subscription whose
	// reader is slow. Past it, the client stops the subscription on the
	// server and resumes it, from the last event it holds, once the reader
	// has caught up: a slow reader loses nothing and never holds up the
	// connection. Default 256.
	Buffer int
}

// Subscription delivers the changes of the keys that match its patterns,
// in revision order, each once, with no gap, across reconnections. Close
// it when done.
type Subscription struct {
	c        *Client
	patterns []string
	buffer   int
	events   chan Event
	stop     chan struct{} // closed by Close
	wake     chan struct{} // the pump has work

	// Initial holds the matching items, in key order, when
	// SubscribeOptions.Initial asked for them. The server reads them in
	// pages (of up to 1,000 keys): each page is consistent as of its own
	// revision, and Events leaves out every change a page already holds,
	// so that applying Initial, then Events, gives the server's state at
	// each event's revision from InitialRevision on.
	Initial []Item

	// InitialRevision is the revision of the last page of Initial: from
	// the first event above it, the items and events together are exact.
	InitialRevision int64

	mu       sync.Mutex
	queue    []Event                          // guarded by mu; received and not yet delivered
	cn       *conn                            // guarded by mu; the connection it runs on, or nil
	id       int64                            // guarded by mu; its id there
	need     bool                             // guarded by mu; it must be subscribed again
	owned    bool                             // guarded by mu; Subscribe sends its first subscribe: the supervisor leaves it alone until then
	overflow bool                             // guarded by mu; the queue overflowed: resume once drained
	started  bool                             // guarded by mu; subscribed once
	from     int64                            // guarded by mu; with no event yet, the revision it started after
	last     int64                            // guarded by mu; the revision of the last event queued
	lastKeys []string                         // guarded by mu; the keys of that revision's events queued
	skip     func(key string, rev int64) bool // guarded by mu; Initial's pages: changes they hold
	err      error                            // guarded by mu; why it ended
	ended    bool                             // guarded by mu
	closed   bool                             // guarded by mu; Close was called
}

// errClientClosed ends the subscriptions of a closed client: the
// subscription's own Close error, and the client's, which every call
// after Client.Close returns.
var errClientClosed = fmt.Errorf("%w: %w", engine.ErrClosed, ErrClosed)

// Subscribe subscribes to the changes of every key that matches one of
// patterns (see package pattern: user:*, *:session, /^order:\d+$/).
func (c *Client) Subscribe(ctx context.Context, patterns []string, opts *SubscribeOptions) (*Subscription, error) {
	var o SubscribeOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case len(patterns) == 0:
		return nil, fmt.Errorf("%w: no patterns", engine.ErrInvalidOptions)
	case o.Initial && o.FromRevision != 0:
		return nil, fmt.Errorf("%w: Initial and FromRevision together", engine.ErrInvalidOptions)
	case o.FromRevision < 0 || o.Buffer < 0:
		return nil, fmt.Errorf("%w: negative FromRevision or Buffer", engine.ErrInvalidOptions)
	}
	if o.Buffer == 0 {
		o.Buffer = 256
	}
	s := &Subscription{c: c, patterns: append([]string(nil), patterns...), buffer: o.Buffer,
		events: make(chan Event), stop: make(chan struct{}), wake: make(chan struct{}, 1),
		need: true, owned: true, from: o.FromRevision}
	var init *initialScan
	if o.Initial {
		var err error
		if init, err = newInitialScan(patterns); err != nil {
			return nil, err
		}
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	// Known to the client first, so that a connection lost from here on
	// has it made again.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	// Its first subscribe is Subscribe's, whose caller learns how it
	// went (and Initial's pages need it made first): a supervisor pass
	// meanwhile (another subscription resuming) would send a second one,
	// which would take a second place on the server, over a cap perhaps.
	_, err = c.sendOn(ctx, cn, func(cn *conn) error { return s.subscribeOn(ctx, cn) })
	if err != nil {
		s.end(err, true) // still its own: the supervisor never sends for it
		return nil, err
	}
	s.mu.Lock()
	s.owned = false
	again := s.need && !s.ended // its connection was lost since: the supervisor's now
	s.mu.Unlock()
	if again {
		c.wake()
	}
	if init != nil {
		if err := init.load(ctx, c, s); err != nil {
			s.Close()
			return nil, err
		}
	}
	// Counted under mu, as Close reads closed before it waits: no pump
	// starts once Close is waiting.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed // Close has ended s
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go s.pump()
	return s, nil
}

// Events returns the channel of events. It is closed when the
// subscription ends: Err then says why.
func (s *Subscription) Events() <-chan Event { return s.events }

// Next returns the next event, or the error that ended the subscription,
// or ctx's.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return Event{}, s.Err()
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Err returns why the subscription ended: engine.ErrClosed after Close
// (and ErrClosed too after Client.Close), an error that errors.Is
// recognises as engine.ErrCompacted when it could not resume (the server's history no longer reaches back),
// engine.ErrPatternTimeout, ErrUnauthorized or ErrForbidden when the
// server no longer takes its credentials, or ErrSubscriptionLimit when it
// was resumed on a connection that had no room left for it, or
// ErrBadMessage or ErrMessageTooLarge when its connection brought a
// message the client cannot take. It is nil while it runs. A
// subscription a cluster node ends (503: it has had no leader for a
// while, or is closing) does not end here: it resumes, on the next of
// Options.URLs if there are others, as after a dropped connection.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Revision returns the revision of the last event received (delivered or
// about to be), or the one the subscription started after.
func (s *Subscription) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last > 0 {
		return s.last
	}
	return s.from
}

// Close ends the subscription; Events is closed soon after.
func (s *Subscription) Close() {
	s.end(engine.ErrClosed, true)
}

// end ends the subscription with err. now drops the events not yet
// delivered (Close); otherwise they are delivered first.
func (s *Subscription) end(err error, now bool) {
	s.mu.Lock()
	if !s.ended {
		s.ended, s.err = true, err
	}
	cn, id := s.cn, s.id
	s.cn, s.id = nil, 0
	stop := cn != nil && cn.retire(id) // under mu: see retire
	if now && !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	if stop {
		cn.sendUnsubscribe(id)
	}
	s.signal()
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) needsSubscribe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.need && !s.ended && !s.owned
}

// resumeFrom is the fromRevision to subscribe with, under mu. The wire
// resumes after whole revisions: from the one before the last event's,
// whose events already queued receive leaves out.
func (s *Subscription) resumeFrom() int64 {
	if s.last > 0 {
		return s.last - 1
	}
	return s.from
}

// subscribeOn subscribes on cn, from where the subscription is.
func (s *Subscription) subscribeOn(ctx context.Context, cn *conn) error {
	s.mu.Lock()
	if !s.need || s.ended {
		s.mu.Unlock()
		return nil
	}
	req := request{Op: wire.OpSubscribe, Patterns: s.patterns}
	if from := s.resumeFrom(); s.started || from > 0 {
		req.FromRevision = &from
	}
	s.mu.Unlock()
	// Whether every place on cn the client has given up was free on the
	// server when the request left.
	settled := cn.settled()
	m, err := cn.roundTrip(ctx, req, s)
	if err != nil {
		return err
	}
	switch m.Code {
	case http.StatusOK:
		if m.SubscriptionID <= 0 {
			// Against the protocol: nothing would ever come to it.
			err := fmt.Errorf("%w: a subscribe reply without a subscriptionId", ErrBadMessage)
			s.end(err, false)
			return err
		}
		return nil
	case http.StatusServiceUnavailable: // shutting down, or a cluster node that cannot serve it: try again
		err := replyError(&m)
		if m.ErrorCode != "" {
			// A node without a leader, or behind the revision to resume
			// from: the next try goes to the next node there is.
			cn.c.moveOn(cn, err)
		}
		return err
	case http.StatusTooManyRequests:
		// The request did not run. Over the connection's rate, or its
		// token's cap on subscriptions, which the token's other
		// connections free as they end (the one this client has just lost
		// among them), a subscription being resumed tries again after a
		// pause; Subscribe ends a new one and returns the error.
		err := replyError(&m)
		if settled && strings.HasPrefix(m.Error, wire.ConnSubscriptionLimit) {
			// Over the connection's own cap, with no unsubscribe of the
			// client's still on the way to free a place: only the caller
			// can, and trying again would wait for ever, unseen.
			s.end(err, false)
		}
		return err
	}
	err = replyError(&m)
	if m.Code == http.StatusBadRequest && m.SubscriptionID == 0 && errors.Is(err, ErrBadRequest) {
		err = fmt.Errorf("%w: %w", engine.ErrInvalidOptions, err)
	}
	s.end(err, false)
	return err
}

// attach makes id on cn the subscription's, from the reader, for a
// subscribe reply; false when the subscription no longer wants it. The
// connection has it from the same moment, under mu: a Close that comes
// after finds it there to retire, and unsubscribes (end).
func (s *Subscription) attach(cn *conn, id int64, rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.need {
		return false
	}
	s.cn, s.id, s.need = cn, id, false
	if !s.started {
		s.started = true
		s.from = rev
	}
	cn.mu.Lock()
	delete(cn.retired, id)
	cn.subs[id] = s
	cn.mu.Unlock()
	return true
}

// detach forgets cn, which has ended: the subscription must be made
// again.
func (s *Subscription) detach(cn *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cn == cn {
		s.cn, s.id, s.need = nil, 0, true
	}
}

// resume has the subscription, which the server ended on cn for a reason
// that is not final (a cluster node without a leader for a while, or
// closing), made again from the last event received: on the next node
// there is, or on cn again, with backoff, when the client knows no other.
func (s *Subscription) resume(cn *conn, why error) {
	s.mu.Lock()
	id := s.id
	ours := s.cn == cn && !s.ended
	stop := false
	if ours {
		s.cn, s.id, s.need = nil, 0, true
		stop = cn.retire(id) // under mu: see retire
	}
	s.mu.Unlock()
	if !ours {
		return
	}
	// With other URLs, cn is dropped next, and the server's subscription
	// ends with it: an unsubscribe sent there would only race the close.
	if stop && !cn.c.movesAway() {
		cn.sendUnsubscribe(id) // it holds its place on the server until then
	}
	cn.c.moveOn(cn, why)
}

// receive takes a message for the subscription from cn's reader: a
// notification, or the end of the subscription on the server.
func (s *Subscription) receive(cn *conn, m message) {
	if m.Type != "notification" {
		switch m.Code {
		case http.StatusGone:
			s.end(replyError(&m), false)
		case http.StatusBadRequest:
			s.end(fmt.Errorf("%w: %s (everything up to revision %d was delivered)", engine.ErrPatternTimeout, m.Error, m.Revision), false)
		case http.StatusServiceUnavailable:
			s.resume(cn, replyError(&m))
		}
		return
	}
	ev := Event{Key: m.Key, Revision: m.Revision, Time: time.UnixMilli(m.Timestamp), Deleted: m.Value == nil}
	if m.Value != nil {
		ev.Value = *m.Value
	}
	s.mu.Lock()
	if s.cn == cn && !s.ended && ev.Revision < s.last {
		// The server resumes after the revision before the last event's
		// and sends revisions in order: one that goes back means that
		// changes were sent out of order, or lost.
		last := s.last
		s.mu.Unlock()
		s.end(fmt.Errorf("%w: subscription %d sent revision %d after %d", ErrBadMessage, m.SubscriptionID, ev.Revision, last), false)
		return
	}
	stop := s.queueLocked(cn, ev)
	s.mu.Unlock()
	if stop != 0 {
		cn.sendUnsubscribe(stop)
	}
}

// queueLocked queues ev, received on cn, unless it was received before;
// under mu. When the queue is full, it retires the server's subscription
// and returns its id, to unsubscribe.
func (s *Subscription) queueLocked(cn *conn, ev Event) (stop int64) {
	if s.ended || s.cn != cn || s.overflow {
		return 0
	}
	if ev.Revision == s.last && contains(s.lastKeys, ev.Key) {
		return 0 // resumed: received before
	}
	if len(s.queue) >= s.buffer {
		// The reader is behind: stop the server's subscription, and resume
		// from here once the reader has caught up.
		s.overflow = true
		if cn.retire(s.id) {
			stop = s.id
		}
		s.cn, s.id = nil, 0
		return stop
	}
	if ev.Revision != s.last {
		s.last, s.lastKeys = ev.Revision, s.lastKeys[:0]
	}
	s.lastKeys = append(s.lastKeys, ev.Key)
	if s.skip != nil && s.skip(ev.Key, ev.Revision) {
		return 0
	}
	s.queue = append(s.queue, ev)
	s.signal()
	return 0
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// pump delivers the queued events to Events, and has the subscription
// resumed once a reader that fell behind has caught up.
func (s *Subscription) pump() {
	defer s.c.wg.Done()
	defer close(s.events)
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			select {
			case s.events <- ev:
			case <-s.stop:
				return
			case <-s.c.ctx.Done(): // Client.Close, after s ended unread
				return
			}
			continue
		}
		if s.ended {
			s.mu.Unlock()
			return
		}
		if s.overflow {
			s.overflow, s.need = false, true
			s.queue = nil // let the large array go
			s.mu.Unlock()
			s.c.wake()
			continue
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.stop:
			return
		case <-s.c.ctx.Done():
			return
		}
	}
}
