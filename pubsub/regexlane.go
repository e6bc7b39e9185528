package pubsub

import (
	"time"

	"github.com/livekv/livekv/pattern"
)

// runRegex holds the regex lane's role until Close (see lane): it hands
// out the published batches, beginning with the rest of w's batch when it
// took the role over. If the role passes to another goroutine while it
// matches, it goes on alone with the subscription it was matching, and
// returns when that one ends. b.wg counts it.
func (l *lane) runRegex(w *work) {
	b := l.b
	defer b.wg.Done()
	for {
		if d := l.catchUpRegex(w); d != nil {
			d.finish()
			return
		}
		select {
		case <-b.stop:
			return
		case <-l.wake:
		}
		l.mu.Lock()
		l.takeIn()
		l.mu.Unlock()
	}
}

// catchUpRegex hands out the rest of w's batch, if one is under way, then
// the batches after the cursor, up to the newest. It returns the
// subscription left to this goroutine if the role passed to another.
func (l *lane) catchUpRegex(w *work) *detached {
	b := l.b
	if w.batch != nil {
		if d := l.handOut(w); d != nil {
			return d
		}
		l.handed()
	}
	for {
		b.hmu.Lock()
		// The history keeps what the lanes have not handled.
		batches, _ := b.hist.after(l.cursor.Load(), b.hist.last, fetchMax)
		b.hmu.Unlock()
		if len(batches) == 0 {
			return nil
		}
		for i := range batches {
			l.mu.Lock()
			if batches[i].Revision <= l.cursor.Load() { // Publish may have handled it
				l.mu.Unlock()
				continue
			}
			l.takeIn()
			l.plan(w, &batches[i])
			l.mu.Unlock()
			if d := l.handOut(w); d != nil {
				return d
			}
		}
		l.handed()
	}
}

// plan makes batch w's work: the subscriptions that its anchors admit a
// key of, each once, from the first such key. mu is held.
func (l *lane) plan(w *work, batch *Batch) {
	w.batch, w.todo, w.next = batch, w.todo[:0], 0
	for i := range batch.Events {
		l.index.Candidates(batch.Events[i].Key, func(s *Subscription) bool {
			if s.markRev != batch.Revision { // else another of its patterns, or an earlier key, listed it
				s.markRev = batch.Revision
				w.todo = append(w.todo, offerTo{s: s, first: i})
			}
			return true
		})
	}
	l.handing = batch.Revision
}

// handOut offers w's batch to the subscriptions left in w.todo, matching
// each outside mu, then marks the batch handled. If the role passed to
// another goroutine meanwhile, it returns the subscription it was
// matching, which this goroutine now feeds alone.
func (l *lane) handOut(w *work) *detached {
	batch := w.batch
	l.mu.Lock()
	for w.next < len(w.todo) {
		o := w.todo[w.next]
		w.next++
		s := o.s
		s.mu.Lock()
		ready := s.synced && !s.ended && batch.Revision >= s.sent.Revision
		s.mu.Unlock()
		if !ready {
			continue
		}
		// Only the lane makes s fall behind: until s.mu is taken again,
		// s can only end, or be detached by the watchdog, which takes
		// the role (seen below).
		w.at, w.since = s, time.Now()
		if !w.armed {
			l.dog.Reset(l.budgetNow())
			w.armed = true
		}
		l.mu.Unlock()
		i, keep, undecided, late := s.matchFrom(batch, o.first, w.keep[:0], w.since.Add(l.budgetNow()), nil)
		w.keep = keep
		l.mu.Lock()
		if l.holder != w { // the watchdog detached s and gave the role to another
			d := &detached{l: l, s: s, batch: batch, next: i, keep: keep, undecided: undecided, stop: w.stop, turn: w.turn}
			l.mu.Unlock()
			return d
		}
		w.at = nil
		if late {
			// Over budget, but decided so far: the lane goes on here,
			// and a goroutine of its own takes the rest of s's matching.
			stop := l.detach(s, batch)
			w.keep = nil // the new goroutine's now
			d := &detached{l: l, s: s, batch: batch, next: i, keep: keep, undecided: undecided, stop: stop}
			l.b.wg.Add(1)
			go func() {
				defer l.b.wg.Done()
				d.finish()
			}()
			continue
		}
		s.mu.Lock()
		l.offered(s, batch, keep, i, undecided)
		s.mu.Unlock()
	}
	l.cursor.Store(batch.Revision)
	l.handing = 0
	if w.armed {
		l.dog.Stop()
		w.armed = false
	}
	clear(w.todo)
	w.batch, w.todo = nil, w.todo[:0]
	l.mu.Unlock()
	return nil
}

// offered delivers to s, in step, the events of batch at the indexes
// keep, all of them, or, if there is no room for all, none: then s falls
// behind, and a goroutine of its own feeds it from the history, starting
// with this batch. A key that no pattern matched and a regex could not
// decide on (at event i) ends s before the batch instead, as on its own
// goroutine. mu and s.mu are held.
func (l *lane) offered(s *Subscription, batch *Batch, keep []int, i int, undecided *pattern.Pattern) {
	if s.ended {
		return
	}
	before := Position{Revision: batch.Revision}
	switch {
	case undecided != nil:
		s.endUndecided(batch, 0, i, undecided) // nothing of the batch is in ch
	case cap(s.ch)-len(s.ch) < len(keep):
		l.fallBehind(s, before)
	default:
		l.b.stats.delivered.Add(int64(len(keep)))
		for j, i := range keep {
			s.put(batch, i, j == len(keep)-1)
		}
	}
}

// watch is the regex lane's watchdog, run by its timer in a goroutine of
// its own: when the goroutine in the role has been matching one
// subscription for longer than the budget, it detaches that subscription
// and goes on in the role itself; otherwise it looks again when the
// budget would run out. Between batches it does nothing: the next one
// arms it.
func (l *lane) watch() {
	l.mu.Lock()
	w := l.holder
	var nw *work
	switch {
	case l.handing == 0:
	case w.at == nil: // about to match, or just took the role
		l.dog.Reset(l.budgetNow())
		w.armed = true // for the batch's end to stop it
	default:
		if left := l.budgetNow() - time.Since(w.since); left > 0 {
			l.dog.Reset(left)
			w.armed = true
		} else if !l.b.tryTurn() {
			// As many goroutines as may are matching outside the lane:
			// the lane waits for its own match, or for a turn.
			l.dog.Reset(l.budgetNow())
			w.armed = true
		} else {
			w.turn = true // for w's goroutine, which goes on matching
			nw = l.takeOver(w)
		}
	}
	l.mu.Unlock()
	if nw != nil {
		l.runRegex(nw)
	}
}

// takeOver takes the role from w's goroutine, which is matching w.at, for
// the caller, who must then run runRegex with the work returned: it goes
// on with w's batch after w.at. w.at is detached: from now on w's
// goroutine, which alone matches it, feeds it alone. mu is held.
func (l *lane) takeOver(w *work) *work {
	nw := &work{batch: w.batch, todo: w.todo, next: w.next, armed: true}
	l.holder = nw
	w.stop = l.detach(w.at, w.batch)
	w.at = nil
	l.dog.Reset(l.budgetNow())
	l.b.wg.Add(1) // w's goroutine is counted and has not returned: the count is not 0
	return nw
}

// detach takes s, whose matching of batch is under way, from the lane:
// the goroutine matching it goes on feeding it, alone (see detached), and
// is stopped by what this returns (addFollower); nothing if s has ended.
// mu is held.
func (l *lane) detach(s *Subscription, batch *Batch) follower {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return follower{}
	}
	s.synced, s.alone = false, true
	s.sent = later(s.sent, Position{Revision: batch.Revision}) // the lane sent everything before
	return l.addFollower(s)
}

// detached is a subscription that the regex lane left, during a batch, to
// a goroutine of its own (the one stuck matching it, or, if it was merely
// slow, a new one), with the matching done so far: the events of batch
// before next have been matched, and those at the indexes keep match.
type detached struct {
	l         *lane
	s         *Subscription
	batch     *Batch
	next      int
	keep      []int
	undecided *pattern.Pattern // at event next, if not nil
	stop      follower         // from detach; none if s had ended
	turn      bool             // holds a matching turn (see turns.go)
}

// finish matches the rest of the batch, delivers it, or ends the
// subscription before it on an undecided key, then feeds the subscription
// from the history, alone, until its matching has been fast for a while
// (follow): a regex that was slow once is likely to be slow again.
func (d *detached) finish() {
	l, s, batch := d.l, d.s, d.batch
	kill := d.stop.kill
	release := func() {
		if d.turn {
			d.turn = false
			l.b.endTurn()
		}
	}
	if kill == nil { // s had ended before it was detached
		release()
		return
	}
	quit := func() {
		l.mu.Lock()
		l.unfollow(s)
		l.mu.Unlock()
		close(d.stop.exited)
	}
	if d.undecided == nil {
		if !d.turn {
			if !l.b.takeTurn(kill) {
				quit()
				return
			}
			d.turn = true
		}
		// Stopped by kill (s's end, or the broker's Close) at the next key.
		d.next, d.keep, d.undecided, _ = s.matchFrom(batch, d.next, d.keep, time.Time{}, kill)
	}
	release()
	s.mu.Lock()
	if s.ended || d.undecided != nil {
		if d.undecided != nil {
			s.endUndecided(batch, 0, d.next, d.undecided)
		}
		s.mu.Unlock()
		quit()
		return
	}
	s.mu.Unlock()
	if !s.sendKept(batch, d.keep, kill) {
		quit()
		return
	}
	next := Position{Revision: batch.Revision + 1}
	s.mu.Lock()
	if !s.ended {
		s.sent = later(s.sent, next)
	}
	s.mu.Unlock()
	s.follow(next, true, d.stop)
}
