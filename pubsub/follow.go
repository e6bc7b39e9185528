package pubsub

import "time"

// follow feeds a subscription from the history, from the batch after
// from: one that fell behind until it is in step with the dispatcher
// again, and one with a regex for as long as it runs, since its regexes
// must not delay anyone else. b.Close, s.Close and the end of the
// subscription stop it (kill).
func (s *Subscription) follow(from int64, kill, exited chan struct{}) {
	b := s.b
	defer b.wg.Done()
	defer close(exited)
	handedBack := false
	defer func() {
		if !handedBack {
			b.dmu.Lock()
			b.unfollow(s)
			b.dmu.Unlock()
		}
	}()
	done := from // every matching event through done is in ch
	for {
		cursor := b.cursor.Load()
		if done >= cursor {
			if !s.regex && s.handBack(done) {
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
		batches, ok := b.hist.after(done, cursor, 64)
		oldest := b.hist.oldest()
		b.hmu.Unlock()
		if !ok {
			s.stop(&CompactedError{Revision: done, Oldest: oldest})
			return
		}
		for i := range batches {
			if !s.send(&batches[i], done, kill) {
				return
			}
			done = batches[i].Revision
		}
		if len(batches) < 64 {
			done = cursor // nothing else up to the cursor
		}
		s.mu.Lock()
		if !s.ended {
			s.through = max(s.through, done)
		}
		s.mu.Unlock()
	}
}

// handBack gives the subscription back to the dispatcher if it has sent
// everything up to the dispatcher's cursor, and reports whether it did (or
// the subscription has ended).
func (s *Subscription) handBack(done int64) bool {
	b := s.b
	b.dmu.Lock()
	defer b.dmu.Unlock()
	if b.cursor.Load() > done {
		return false
	}
	s.mu.Lock()
	if !s.ended {
		// From the dispatcher's next batch on, it sends to s again.
		s.synced = true
		s.markRev = 0
		s.through = max(s.through, done)
	}
	s.mu.Unlock()
	b.unfollow(s)
	return true
}

// roomPoll is how often a follower looks for room in a full buffer.
const roomPoll = time.Millisecond

// send decides which events of the batch the subscription matches, then
// puts them into ch, all of them or, if the subscription is stopped
// first, none: a transaction is never split, unless it has more matching
// events than the buffer holds. A key that a regex could not decide on
// ends the subscription before the batch: nothing is skipped unsaid. It
// reports false if the subscription ended; done is the revision through
// which every matching event is in ch.
func (s *Subscription) send(batch *Batch, done int64, kill chan struct{}) bool {
	keep := s.scratch[:0]
	for i := range batch.Events {
		ok, undecided := s.match(batch.Events[i].Key)
		if undecided != nil {
			s.mu.Lock()
			if !s.ended {
				s.through = max(s.through, batch.Revision-1) // the history has nothing in between
			}
			s.end(&PatternTimeoutError{Pattern: undecided.String(), Key: batch.Events[i].Key, Revision: batch.Revision})
			s.mu.Unlock()
			return false
		}
		if ok {
			keep = append(keep, i)
		}
	}
	s.scratch = keep
	if len(keep) == 0 {
		return true
	}
	whole := len(keep) <= cap(s.ch)
	for len(keep) > 0 {
		n := 1
		if whole {
			n = len(keep)
		}
		if !s.waitRoom(n, done, kill) {
			return false
		}
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return false
		}
		for _, i := range keep[:n] {
			s.ch <- batch.Events[i] // the room stays: only this goroutine sends
		}
		if n == len(keep) {
			s.through = max(s.through, batch.Revision)
		}
		s.mu.Unlock()
		s.b.stats.delivered.Add(int64(n))
		keep = keep[n:]
	}
	return true
}

// waitRoom waits until ch has room for n events. It reports false if the
// subscription was stopped first, or has fallen behind the history while
// it waited: then it ends with ErrCompacted.
func (s *Subscription) waitRoom(n int, done int64, kill chan struct{}) bool {
	var t *time.Ticker
	for cap(s.ch)-len(s.ch) < n {
		if oldest := s.b.evicted.Load(); done < oldest {
			s.stop(&CompactedError{Revision: done, Oldest: oldest})
			return false
		}
		if t == nil {
			t = time.NewTicker(roomPoll)
			defer t.Stop()
		}
		select {
		case <-t.C:
		case <-kill:
			return false
		}
	}
	return true
}
