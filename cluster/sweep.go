package cluster

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
)

// A replica shows a key until its expiry commits (engine.OpenReplica), so
// that every node answers alike at a revision whatever its clock says.
// The leader therefore sweeps as soon as the first key with a TTL is due,
// and a key outlives its TTL by about one commit (and on a follower the
// time it takes to learn of it), not by up to the interval between
// sweeps.

// sweepEvery is the longest the leader waits between sweeps.
func sweepEvery(o *engine.Options) time.Duration {
	if o.SweepInterval > 0 {
		return o.SweepInterval
	}
	return engine.DefaultSweepInterval
}

// retrySweep is how long the sweep waits, at least, before it tries
// again for a key already due, so that a sweep that removed nothing (it
// raced a write of the key) does not spin.
const retrySweep = 10 * time.Millisecond

// sweeps holds what decides when the leader sweeps next, besides the
// timer armSweep sets: the deadline that writes compare their expiries
// with, and the channel that wakes the sweep early.
type sweeps struct {
	// by is the time the sweep runs by unless woken, by the engine's
	// clock in unix ns: a commit that writes a key expiring before it
	// wakes the sweep (wrote).
	by atomic.Int64
	// written is the earliest expiry a commit wrote since the sweep last
	// began to look (math.MaxInt64: none), so that one that the look
	// missed and that came before by was set is not missed.
	written atomic.Int64
	soon    chan struct{}
}

func newSweeps() *sweeps {
	s := &sweeps{soon: make(chan struct{}, 1)}
	s.by.Store(math.MinInt64) // wakes for no write until the sweep has looked
	return s
}

// wake makes the sweep look now.
func (s *sweeps) wake() {
	select {
	case s.soon <- struct{}{}:
	default:
	}
}

// wrote is given each transaction the leader hands its replicator, under
// the engine's writer lock.
func (s *sweeps) wrote(tx *wal.Tx) {
	for i := range tx.Writes {
		e := tx.Writes[i].Expires
		if e == 0 {
			continue
		}
		if e < s.written.Load() {
			s.written.Store(e) // writers hold the lock: no other stores
		}
		if e < s.by.Load() {
			s.wake()
		}
	}
}

// sweep expires keys, on the leader only: the expiries reach the others
// through the log like any write.
func (n *Node) sweep(every time.Duration) {
	defer n.wg.Done()
	s := n.rep.sweeps
	t := time.NewTimer(n.armSweep(every, 0))
	defer t.Stop()
	failures := 0 // in a row
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-s.soon:
		}
		for n.isReady() && (n.opts.sweepHeld == nil || !n.opts.sweepHeld()) {
			_, more, err := n.ctl.Sweep()
			if err != nil {
				failures++
				break
			}
			failures = 0
			if !more {
				break
			}
		}
		t.Reset(n.armSweep(every, failures))
	}
}

// armSweep returns how long the sweep waits before it looks again, and
// sets the deadline by which writes decide to wake it early: on a
// leader, until the first key is due, or after failures sweeps in a row
// failed (the leader stopped taking writes: a transfer, a refused entry,
// no quorum) from retrySweep doubling; at most every. A new leader, and
// one that takes writes again, wakes it (Node.leadership).
func (n *Node) armSweep(every time.Duration, failures int) time.Duration {
	s := n.rep.sweeps
	s.written.Store(math.MaxInt64)
	d := every
	first, now, ok := n.ctl.NextExpiry()
	ready := n.isReady()
	switch {
	case ready && failures > 0:
		d = min(d, retrySweep<<min(failures-1, 16))
	case ready && ok:
		d = min(d, max(first.Sub(now), retrySweep))
	}
	// A write wakes the sweep if it brings the look forward by more than
	// retrySweep, the least time between looks: not each write of a key
	// already due.
	by := now.Add(d - retrySweep).UnixNano()
	s.by.Store(by)
	// A commit after NextExpiry's look and before by was set: its wrote
	// stored written before it read by, so either it saw the new by
	// (and woke the sweep if it must) or this sees its expiry.
	if w := s.written.Load(); ready && failures == 0 && w < by {
		d = max(time.Unix(0, w).Sub(now), retrySweep)
		s.by.Store(now.Add(d - retrySweep).UnixNano())
	}
	return d
}
