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
// and a key outlives its TTL by about one commit, not by up to the
// interval between sweeps.

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

// sweeps is when the leader sweeps next.
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
	t := time.NewTimer(n.sweepWait(every, false))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-s.soon:
		}
		failed := false
		for n.isReady() && (n.opts.sweepHeld == nil || !n.opts.sweepHeld()) {
			k, err := n.ctl.Sweep()
			failed = err != nil
			if err != nil || k < 1024 {
				break
			}
		}
		t.Reset(n.sweepWait(every, failed))
	}
}

// sweepWait is how long the sweep waits before it looks again: until the
// first key is due on a leader whose last sweep did not fail, else
// every; a new leader wakes it (Node.leadership).
func (n *Node) sweepWait(every time.Duration, failed bool) time.Duration {
	s := n.rep.sweeps
	s.written.Store(math.MaxInt64)
	d := every
	first, now, ok := n.ctl.NextExpiry()
	ready := !failed && n.isReady()
	if ok && ready {
		d = min(d, max(first.Sub(now), retrySweep))
	}
	s.by.Store(now.Add(d).UnixNano())
	// A commit after NextExpiry's look and before by was set: its wrote
	// stored written before it read by, so either it saw the new by
	// (and woke the sweep if it must) or this sees its expiry.
	if w := s.written.Load(); ready && w < now.Add(d).UnixNano() {
		d = max(time.Unix(0, w).Sub(now), retrySweep)
		s.by.Store(now.Add(d).UnixNano())
	}
	return d
}
