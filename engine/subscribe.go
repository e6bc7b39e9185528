package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/livekv/livekv/pattern"
	"github.com/livekv/livekv/pubsub"
)

// SubscribeOptions modify a subscription. A nil *SubscribeOptions means the
// defaults: live changes from now on, that is every change after the
// revision Revision returns when the subscription is made.
type SubscribeOptions struct {
	// FromRevision, when above 0, asks for every matching change after
	// that revision, then the live ones, with no gap between. A revision
	// older than the change history holds ends the call with an error
	// that errors.Is recognises as pubsub.ErrCompacted. 0 means from now,
	// not after revision 0: to resume after a revision held that may be
	// 0 (Subscription.Revision before any change, the InitialRevision of
	// a store with none), give From: pubsub.After(rev).
	FromRevision int64

	// From, when its Revision is above 0, asks for every matching change
	// from that position on, such as a closed subscription's Position:
	// the streams join exactly, even inside a transaction that Close cut
	// (see pubsub.Position). It cannot be combined with FromRevision.
	From pubsub.Position

	// Initial asks for the current matching items first, read from one
	// snapshot (Subscription.Initial, at Subscription.InitialRevision),
	// followed by every change after that revision: load, then watch,
	// without a race. It cannot be combined with FromRevision or From.
	Initial bool

	// Buffer is how many events the subscription's channel holds; see
	// pubsub.SubscribeOptions. Default 256; at most MaxSubscribeBuffer
	// (the channel is made whole at once): a larger one is
	// ErrInvalidOptions.
	Buffer int

	// Filter, when not nil, is asked about a key before a costly pattern
	// (a regex, a long glob) runs on it, for the events and the Initial
	// items alike: a key it refuses is one no costly pattern matches, and
	// such a pattern's running out of time on it ends nothing. See
	// pubsub.SubscribeOptions.
	Filter func(key string) bool
}

// MaxSubscribeBuffer is the largest SubscribeOptions.Buffer, 1,048,576
// events: pubsub.MaxBuffer.
const MaxSubscribeBuffer = pubsub.MaxBuffer

// Start returns the position a subscription with these options and
// patterns starts at, Revision 0 for now (Initial: right after the
// snapshot it reads); or, for what SubscribePatterns refuses, an error
// that wraps ErrInvalidOptions, or ErrRevisionAhead for a FromRevision
// of math.MaxInt64, after which no revision comes. A cluster node waits
// for the revision before it.
func (o SubscribeOptions) Start(pats []*pattern.Pattern) (pubsub.Position, error) {
	switch {
	case o.Initial && (o.FromRevision != 0 || o.From != pubsub.Position{}):
		return pubsub.Position{}, fmt.Errorf("%w: Initial and FromRevision or From together", ErrInvalidOptions)
	case len(pats) == 0:
		return pubsub.Position{}, fmt.Errorf("%w: no patterns", ErrInvalidOptions)
	case slices.Contains(pats, nil):
		return pubsub.Position{}, fmt.Errorf("%w: a nil pattern", ErrInvalidOptions)
	}
	if o.FromRevision == math.MaxInt64 {
		return pubsub.Position{}, fmt.Errorf("%w: the changes after revision %d asked for: no revision comes after it", ErrRevisionAhead, o.FromRevision)
	}
	start, err := pubsub.SubscribeOptions{FromRevision: o.FromRevision, From: o.From, Buffer: o.Buffer}.Start()
	if err != nil {
		return pubsub.Position{}, fmt.Errorf("%w (%w)", ErrInvalidOptions, err)
	}
	return start, nil
}

// Subscription is a subscription to the changes of the keys that match its
// patterns; see pubsub.Subscription for its guarantees.
type Subscription struct {
	*pubsub.Subscription

	// Initial holds the matching items as of InitialRevision, in key
	// order, when SubscribeOptions.Initial asked for them.
	Initial []Item

	// InitialRevision is the revision Initial was read at; the events
	// start after it. Resume after it with From:
	// pubsub.After(InitialRevision): it is 0 for a store with no change.
	InitialRevision int64
}

// Subscribe subscribes to the committed changes of every key that matches
// one of patterns (see package pattern for their syntax). Events arrive in
// revision order, once each, with no gap; a subscription that falls behind
// catches up from the history without slowing writers. Close the
// subscription when done; Close of the DB ends it too.
func (db *DB) Subscribe(patterns []string, opts *SubscribeOptions) (*Subscription, error) {
	pats := make([]*pattern.Pattern, len(patterns))
	for i, s := range patterns {
		p, err := pattern.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("engine: subscribe: %w", err)
		}
		pats[i] = p
	}
	return db.SubscribePatterns(pats, opts)
}

// SubscribePatterns is Subscribe with patterns already compiled, such as
// pattern.ExactKey for keys that hold wildcard characters.
func (db *DB) SubscribePatterns(pats []*pattern.Pattern, opts *SubscribeOptions) (*Subscription, error) {
	var o SubscribeOptions
	if opts != nil {
		o = *opts
	}
	start, err := o.Start(pats)
	if err != nil {
		return nil, err
	}

	// The events start right after the snapshot: the subscription asks
	// for the revisions after the snapshot's by number, since on disk a
	// commit becomes visible, and reaches the broker, after its fsync and
	// outside the writer lock, so one can land between the two. The lock
	// and the snapshot are released by defers, whatever panics (the
	// Filter and the clock are the caller's code).
	var snap snapshot
	snapped := false
	defer func() {
		if snapped {
			db.closeSnapshot(snap)
		}
	}()
	ps, err := func() (*pubsub.Subscription, error) {
		db.wmu.Lock()
		defer db.wmu.Unlock()
		if db.closed.Load() {
			return nil, ErrClosed
		}
		// The caller has seen every change before start: none can be
		// past the newest revision this DB has made.
		if after := start.Revision - 1; start.Revision != 0 && (after > db.rev || after == db.rev && start.Index > 0) {
			return nil, fmt.Errorf("%w: the changes after revision %d asked for, and the newest is %d: a revision of another history (a store in memory that restarted, or restored from an older backup); read the state again", ErrRevisionAhead, after, db.rev)
		}
		po := &pubsub.SubscribeOptions{From: start, Buffer: o.Buffer, Filter: o.Filter}
		switch {
		case o.Initial:
			snap, snapped = db.snapshot(), true
			po.From = pubsub.Position{Revision: snap.rev + 1}
		case start.Revision == 0:
			// From now: after the newest visible revision, which may
			// not have reached the broker yet (it does right after).
			po.From = pubsub.Position{Revision: db.committed.Load() + 1}
		}
		ps, err := db.broker.Subscribe(pats, po)
		if err != nil {
			return nil, fmt.Errorf("engine: subscribe: %w", err)
		}
		return ps, nil
	}()
	if err != nil {
		return nil, err
	}
	sub := &Subscription{Subscription: ps}
	if o.Initial {
		matched := false
		defer func() {
			if !matched {
				ps.Close()
			}
		}()
		at := db.readAt()
		db.holdClock(at)
		sub.Initial, err = matching(snap.t, snap.rev, at, pats, o.Filter)
		sub.InitialRevision = snap.rev
		if err != nil {
			return nil, fmt.Errorf("engine: subscribe: initial items: %w", err)
		}
		matched = true
	}
	return sub, nil
}

// matching returns the items of the snapshot that match any of pats, in
// key order, scanning only the key ranges the patterns can match. A key
// that a regex could not decide on is a *pubsub.PatternTimeoutError, as
// it is for events: an item is never left out unsaid. A key filter (not
// nil) refuses is matched by the cheap patterns only, as for events.
func matching(t treeCopy, rev, now int64, pats []*pattern.Pattern, filter func(string) bool) ([]Item, error) {
	seen := make(map[string]bool)
	var items []Item
	var err error
	for _, p := range pats {
		start, end := p.Bounds()
		scan(t, rev, now, nil, start, end, RangeOptions{}, func(it Item, _ error) bool {
			if seen[it.Key] {
				return true
			}
			if filter != nil && p.Costly() && !filter(it.Key) {
				return true // a cheap pattern of pats, if it matches, takes the key on its own scan
			}
			ok, merr := p.TryMatch(it.Key)
			if merr != nil {
				ok, _ = pattern.MatchAny(pats, it.Key) // another may match
			}
			if merr != nil && !ok {
				err = &pubsub.PatternTimeoutError{Pattern: p.String(), Key: it.Key, Revision: rev}
				return false
			}
			if ok {
				seen[it.Key] = true
				items = append(items, it)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
	return items, nil
}
