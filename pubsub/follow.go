package pubsub

import (
	"time"

	"github.com/livekv/livekv/pattern"
)

// handBackAfter is how many batches in a row a subscription left alone
// must match, each within a handBackShare-th of its lane's budget, before
// it goes back to the lane once it has caught up: a regex slow on a few
// keys, or matching paused once by the machine, does not keep a goroutine
// of its own for good, and one slow on most keys does not go back and
// forth.
const (
	handBackAfter = 256
	handBackShare = 4
)

// follow feeds a subscription from the history, from position from, until
// it is in step with its lane again, or, alone (its regexes were slow on
// the lane), until its matching has been fast for handBackAfter batches
// and it has caught up. b.Close, s.Close and the end of the subscription
// stop it (kill). Its caller counts it in b.wg.
func (s *Subscription) follow(from Position, alone bool, f follower) {
	b, l := s.b, s.lane
	kill := f.kill
	defer close(f.exited)
	handedBack := false
	defer func() {
		if !handedBack {
			l.mu.Lock()
			l.unfollow(s)
			l.mu.Unlock()
		}
	}()
	next := from // every matching event before next is in ch
	fast := 0    // alone: batches in a row matched within the share of the budget
	for {
		cursor := l.cursor.Load()
		if next.Revision > cursor {
			if !alone && next.Index == 0 && s.handBack(next) {
				handedBack = true
				return
			}
			select {
			case <-s.wake:
			case <-kill:
				return
			}
			continue
		}
		b.hmu.Lock()
		batches, ok := b.hist.after(next.Revision-1, cursor, fetchMax)
		oldest := b.hist.oldest()
		b.hmu.Unlock()
		if !ok {
			s.stop(&CompactedError{Revision: next.Revision - 1, Oldest: oldest})
			return
		}
		for i := range batches {
			select {
			case <-kill:
				// Stopped while behind: a batch that matches nothing
				// never waits on kill in send, and matching all of
				// them up to the lane could take a long while.
				return
			default:
			}
			skip := 0
			if batches[i].Revision == next.Revision {
				skip = next.Index
			}
			ok, took := s.send(&batches[i], skip, kill, alone)
			if !ok {
				return
			}
			next = Position{Revision: batches[i].Revision + 1}
			if alone {
				if fast++; took > l.budgetNow()/handBackShare {
					fast = 0
				}
				if fast >= handBackAfter {
					alone = false // back to the lane once caught up
					s.mu.Lock()
					s.alone = false
					s.mu.Unlock()
				}
			}
		}
		if len(batches) < fetchMax {
			next = later(next, Position{Revision: cursor + 1}) // nothing else up to the cursor
		}
		s.mu.Lock()
		if !s.ended {
			s.sent = later(s.sent, next)
		}
		s.mu.Unlock()
	}
}

// handBack gives the subscription back to its lane if it has sent
// everything up to the lane's cursor, and reports whether it did (or the
// subscription has ended).
func (s *Subscription) handBack(next Position) bool {
	l := s.lane
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cursor.Load() >= next.Revision || l.handing >= next.Revision {
		return false // the lane has handed that batch out, or is handing it out
	}
	// No goroutine of its own feeds it from here on: counted so before
	// it shows as in step, so that Stats never has it both.
	l.unfollow(s)
	s.mu.Lock()
	if !s.ended {
		// From the lane's next batch on, it sends to s again.
		s.synced = true
		s.markRev = 0
		s.sent = later(s.sent, next)
	}
	s.mu.Unlock()
	return true
}

// A follower looks for room in a full buffer when Next takes an event,
// and, for a reader of Events, after roomPoll, then ever less often, up
// to every roomPollMax: a reader that has stopped reading costs a few
// wake-ups a second, not a thousand, and one that reads again waits at
// most that long to be fed.
const (
	roomPoll    = time.Millisecond
	roomPollMax = 50 * time.Millisecond
)

// send decides which events of the batch from index skip on the
// subscription matches, then puts them into ch (see sendKept). A key that
// a regex could not decide on ends the subscription before the batch:
// nothing is skipped unsaid. It reports false if the subscription ended,
// and, if timed, how long the matching took.
func (s *Subscription) send(batch *Batch, skip int, kill chan struct{}, timed bool) (ok bool, took time.Duration) {
	regex := s.lane == s.b.regex
	if regex && !s.b.takeTurn(kill) {
		return false, 0
	}
	var start time.Time
	if timed {
		start = time.Now()
	}
	i, keep, undecided, _ := s.matchFrom(batch, skip, s.scratch[:0], time.Time{}, kill)
	if timed {
		took = time.Since(start)
	}
	if regex {
		s.b.endTurn()
	}
	s.scratch = keep
	if undecided != nil {
		s.mu.Lock()
		s.endUndecided(batch, skip, i, undecided)
		s.mu.Unlock()
		return false, took
	}
	return s.sendKept(batch, keep, kill), took
}

// endUndecided ends s before the events of batch from index from on, on
// the key of event i, which no pattern matched and p could not decide on:
// the subscription has been sent nothing of them, and its Position says so,
// so that nothing is skipped unsaid. A subscription already ended stays as
// it is. s.mu is held.
func (s *Subscription) endUndecided(batch *Batch, from, i int, p *pattern.Pattern) {
	if s.ended {
		return
	}
	s.sent = later(s.sent, Position{Revision: batch.Revision, Index: from}) // the history has nothing in between
	s.end(&PatternTimeoutError{Pattern: p.String(), Key: batch.Events[i].Key, Revision: batch.Revision})
}

// matchFrom appends to keep the indexes of the events of batch, from index
// i on, that the subscription matches, and returns the index of the next
// event to match: len(batch.Events) when it matched them all. It stops
// early at a key that no pattern matched and a regex could not decide on,
// whose index and regex it returns, or, if until is not zero, once the
// clock has passed until (then late), or once the subscription has
// ended: kill (if not nil) closed before a key, or, between two patterns,
// the end seen by match; then next is the key not matched whole.
func (s *Subscription) matchFrom(batch *Batch, i int, keep []int, until time.Time, kill chan struct{}) (next int, _ []int, undecided *pattern.Pattern, late bool) {
	for ; i < len(batch.Events); i++ {
		if kill != nil {
			select {
			case <-kill:
				return i, keep, nil, false
			default:
			}
		}
		ok, u, killed := s.match(batch.Events[i].Key)
		if killed {
			return i, keep, nil, false
		}
		if u != nil {
			return i, keep, u, false
		}
		if ok {
			keep = append(keep, i)
		}
		if !until.IsZero() && time.Now().After(until) {
			return i + 1, keep, nil, true
		}
	}
	return i, keep, nil, false
}

// sendKept puts the events of batch at the indexes keep into ch, all of
// them or, if the subscription is stopped first, none: a transaction is
// never split, unless it has more matching events than the buffer holds.
// It reports false if the subscription ended.
func (s *Subscription) sendKept(batch *Batch, keep []int, kill chan struct{}) bool {
	if len(keep) == 0 {
		return true
	}
	whole := len(keep) <= cap(s.ch)
	for len(keep) > 0 {
		n := 1
		if whole {
			n = len(keep)
		}
		if !s.waitRoom(n, batch.Revision, kill) {
			return false
		}
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return false
		}
		for j, i := range keep[:n] {
			s.put(batch, i, j == len(keep)-1)
		}
		s.mu.Unlock()
		s.b.stats.delivered.Add(int64(n))
		keep = keep[n:]
	}
	return true
}

// waitRoom waits until ch has room for n events. It reports false if the
// subscription was stopped first, or if the history has dropped revision
// needs while it waited: then it ends with ErrCompacted.
func (s *Subscription) waitRoom(n int, needs int64, kill chan struct{}) bool {
	var t *time.Timer
	wait := roomPoll
	// Set before the first look for room: a reader's Next after it
	// signals, one before it made the room that look finds.
	s.roomWait.Store(true)
	defer s.roomWait.Store(false)
	for cap(s.ch)-len(s.ch) < n {
		if evicted := s.b.evicted.Load(); needs <= evicted {
			s.stop(&CompactedError{Revision: needs - 1, Oldest: evicted + 1})
			return false
		}
		s.b.stats.roomLooks.Add(1)
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
			wait = min(2*wait, roomPollMax)
		case <-s.room:
			wait = roomPoll
		case <-kill:
			return false
		}
	}
	return true
}
