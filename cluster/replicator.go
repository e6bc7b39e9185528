package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/wal"
)

// Packing limits of the proposer (see docs/cluster.md): group commit at
// the raft level. The proposer packs an entry only when one of the
// maxInFlight slots is free, so that the writers that arrive while the
// entries in flight are stored and replicated gather into the next one:
// every entry costs an fsync (two with BoltDB) on each node, and on one
// machine the three nodes share one disk. Two in flight let the leader
// store an entry while the followers store the one before; what this
// measured is in docs/cluster.md, "Performance".
const (
	maxEntryTxs   = 256     // transactions in one raft entry
	maxEntryBytes = 1 << 20 // bytes of records in one raft entry, unless one record is larger
	maxInFlight   = 2       // raft entries proposed and not yet applied here
	maxRecord     = 64 << 20
	keepOutcomes  = 8192 // resolved revisions remembered for late waiters
)

// replicator is the engine's Replicator: it takes the transactions the
// leader executes, packs them into raft entries and tells their writers
// how each ended.
//
// Writes happen in stints: each time this node becomes leader, or leads
// again after its stint broke (Node.lead), and has applied a barrier, it
// draws a random nonce that every entry it proposes carries. An entry
// applied with the latest stint's nonce holds what this node executed,
// speculatively, and is published, even after leadership was lost (the
// new leader committed it); any other entry is applied as a follower
// applies it, after the speculative tail (if any) is abandoned. A
// writer's revision resolves when this node applies it: with its own
// nonce the write committed; with another, another leader's entry took
// the revision and the write definitely did not commit
// (ErrNotCommitted); if neither happens in time, ErrUncertain.
//
// Lock order: stintMu, then the engine's writer lock, then mu; handoff,
// then mu.
type replicator struct {
	raft    *raft.Raft // set before the node serves
	rep     *engine.Replica
	timeout time.Duration

	wake    chan struct{} // the proposer has work
	done    chan struct{} // closed by close
	futures chan proposal
	sem     chan struct{} // one per entry in flight
	wg      sync.WaitGroup

	// stintMu serialises applying entries with the start and end of a
	// stint.
	stintMu sync.Mutex
	stint   uint64 // the nonce of the stint whose speculative commits the engine holds; 0 if none
	last    uint64 // the nonce of the last entry applied (0: none); the same on every node
	lastRev int64  // the newest revision applied
	// appliedRev is lastRev, for readers that do not take stintMu.
	appliedRev atomic.Int64
	// lastTime is the newest commit time (unix ns) of the revisions
	// applied, those a restored snapshot holds included: raft snapshots
	// carry it. clockFloor is the newest commit time of a snapshot
	// restored, which the engine's clock does not go below (the engine
	// keeps its clock from going below what it applied itself, not what a
	// snapshot held).
	lastTime   int64
	clockFloor atomic.Int64

	// handoff is held by the proposer from packing an entry until raft
	// has it, so that quiesce can wait for an entry packed before the
	// stint ended to be in raft's hands, and so before a barrier.
	handoff sync.Mutex

	// restart asks the node to lead again: this node's stint broke (raft
	// refused one of its entries, or every node skipped one) or its
	// transfer failed, while it may still lead. See Node.lead. A request
	// names the stint it is about by its generation (gen, when it was
	// made); restartFor is the newest named. A stint started since a
	// request answers it: a request that arrives late, about a stint
	// that has ended, must not end the healthy one after it.
	restart    chan struct{}
	restartFor atomic.Uint64
	// gen counts the stints started; changed under stintMu.
	gen atomic.Uint64

	beforeApply func() // Options.beforeApply
	breaking    func() // tests: runs in breakStint between refusing writes and abandoning, and in fsm.Restore after the restore

	sweeps *sweeps // told of each transaction Append takes

	mu sync.Mutex // guards the fields below
	// accepting is the stint nonce Append stamps; 0 when not leader.
	// Changed under mu; accepts reads it without.
	accepting atomic.Uint64
	prev      uint64 // the nonce the next proposed entry follows
	pending   []pendingTx
	waiters   map[int64]*waiter
	resolved  []int64 // revisions with a resolved waiter, oldest first
	published int64   // newest revision applied here
	notLeader func() error
}

type pendingTx struct {
	rev int64
	rec []byte
}

// waiter is the fate of one revision this node executed.
type waiter struct {
	nonce uint64 // the stint that executed it; 0 waits for any commit
	done  chan struct{}
	err   error
}

func newReplicator(timeout time.Duration, notLeader func() error) *replicator {
	return &replicator{
		timeout:   timeout,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		futures:   make(chan proposal, maxInFlight),
		restart:   make(chan struct{}, 1),
		sem:       make(chan struct{}, maxInFlight),
		waiters:   map[int64]*waiter{},
		notLeader: notLeader,
		sweeps:    newSweeps(),
	}
}

// start starts the proposer once raft runs.
func (r *replicator) start(rf *raft.Raft) {
	r.raft = rf
	r.wg.Add(2)
	go r.propose()
	go r.collect()
}

// close stops the proposer and waits for what it proposed to resolve;
// raft must still run, since it may drop the futures of entries it has
// not applied when it shuts down.
func (r *replicator) close() {
	close(r.done)
	r.wg.Wait()
}

// Append implements engine.Replicator. It runs under the engine's writer
// lock, in revision order, and never waits.
func (r *replicator) Append(tx *wal.Tx) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	nonce := r.accepting.Load()
	if nonce == 0 {
		return r.notLeader()
	}
	rec := wal.AppendTxRecord(nil, tx)
	if len(rec) > maxRecord {
		return fmt.Errorf("%w: transaction of %d bytes, over the %d of a raft entry", engine.ErrTooLarge, len(rec), maxRecord)
	}
	r.sweeps.wrote(tx)
	r.pending = append(r.pending, pendingTx{rev: tx.Revision, rec: rec})
	r.waiters[tx.Revision] = &waiter{nonce: nonce, done: make(chan struct{})}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// accepts reports whether a stint is under way: Append takes records.
func (r *replicator) accepts() bool { return r.accepting.Load() != 0 }

// WaitDurable implements engine.Replicator.
func (r *replicator) WaitDurable(rev int64) error {
	r.mu.Lock()
	w := r.waiters[rev]
	if w == nil {
		if rev <= r.published {
			r.mu.Unlock()
			return nil
		}
		// A revision not executed here (a dependency on a commit
		// applied meanwhile): wait for it to be applied.
		w = &waiter{done: make(chan struct{})}
		r.waiters[rev] = w
	}
	r.mu.Unlock()
	t := time.NewTimer(r.timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err
	case <-t.C:
		return fmt.Errorf("%w: revision %d not applied within %v", ErrUncertain, rev, r.timeout)
	case <-r.done:
		return fmt.Errorf("%w: %w", ErrUncertain, ErrClosed)
	}
}

// resolve settles the waiters of revisions first..last, applied here
// with nonce; mu is held.
func (r *replicator) resolve(first, last int64, nonce uint64) {
	for rev := first; rev <= last; rev++ {
		w := r.waiters[rev]
		if w == nil || isDone(w) {
			continue
		}
		if w.nonce != 0 && w.nonce != nonce {
			w.err = fmt.Errorf("%w: revision %d went to another leader's write", ErrNotCommitted, rev)
		}
		close(w.done)
		r.resolved = append(r.resolved, rev)
	}
	r.published = max(r.published, last)
	for len(r.resolved) > keepOutcomes {
		// A revision resolved once may have been taken again since (a
		// later stint after the first's writes failed): its waiter
		// now is the later one's, kept until it resolves in turn.
		if w := r.waiters[r.resolved[0]]; w != nil && isDone(w) {
			delete(r.waiters, r.resolved[0])
		}
		r.resolved = r.resolved[1:]
	}
}

// failAbove fails every waiter of a stint other than keep above
// revision rev: a barrier applied since they were proposed, and their
// revisions are not in the log, so they never will be; mu is held.
func (r *replicator) failAbove(rev int64, keep uint64) {
	for wr, w := range r.waiters {
		if wr > rev && w.nonce != 0 && w.nonce != keep && !isDone(w) {
			w.err = fmt.Errorf("%w: revision %d was not in the log when leadership changed", ErrNotCommitted, wr)
			close(w.done)
			r.resolved = append(r.resolved, wr)
		}
	}
}

// failRange fails the waiters of revisions first..last executed in the
// stint nonce: their entry was skipped, or never reached the log (why
// says which); mu is held.
func (r *replicator) failRange(first, last int64, nonce uint64, why string) {
	for rev := first; rev <= last; rev++ {
		if w := r.waiters[rev]; w != nil && w.nonce == nonce && !isDone(w) {
			w.err = fmt.Errorf("%w: revision %d %s", ErrNotCommitted, rev, why)
			close(w.done)
			r.resolved = append(r.resolved, rev)
		}
	}
}

func isDone(w *waiter) bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// startStint begins a stint after this node, as leader, applied a
// barrier: from now on Append accepts writes.
func (r *replicator) startStint() {
	var b [8]byte
	nonce := uint64(0)
	for nonce == 0 {
		_, _ = rand.Read(b[:])
		nonce = binary.BigEndian.Uint64(b[:])
	}
	r.stintMu.Lock()
	defer r.stintMu.Unlock()
	r.rep.Abandon() // nothing speculative should remain; be sure
	r.stint = nonce
	r.gen.Add(1)
	r.mu.Lock()
	r.failAbove(r.published, 0)
	r.accepting.Store(nonce)
	r.prev = r.last
	r.mu.Unlock()
}

// endStint ends the stint when leadership is lost, or is being handed
// on (why says which): Append refuses, and what was not proposed yet is
// dropped, its writers told it did not commit. The engine keeps the
// speculative commits that were proposed: the new leader may still
// commit their entries, which then publish them here as usual. The
// first entry of another stint, or this node's next stint, abandons the
// rest.
func (r *replicator) endStint(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepting.Store(0)
	for _, p := range r.pending {
		if w := r.waiters[p.rev]; w != nil && !isDone(w) {
			w.err = fmt.Errorf("%w: %s before revision %d was proposed", ErrNotCommitted, why, p.rev)
			close(w.done)
			r.resolved = append(r.resolved, p.rev)
		}
	}
	r.pending = nil
}

// breakStint ends the stint this node holds, which will never commit
// more: its speculative tail is abandoned, its writes not yet proposed
// fail (why), and the node is asked to lead again, should it still lead
// (it may not: then lead finds so and does nothing). stintMu is held.
func (r *replicator) breakStint(why string) {
	// Append refuses first: a write that got in after the abandoning
	// would stay speculative in the engine, and the next committed
	// entry could not apply.
	r.stint = 0
	r.endStint(why)
	if r.breaking != nil {
		r.breaking()
	}
	r.rep.Abandon()
	r.askRestart(r.gen.Load())
}

// askRestart asks the node to lead again (restart) about the stint of
// generation gen (the stint it holds, or the last it held): nothing
// happens if another stint has started since. One request pending is
// enough.
func (r *replicator) askRestart(gen uint64) {
	for {
		old := r.restartFor.Load()
		if gen <= old || r.restartFor.CompareAndSwap(old, gen) {
			break
		}
	}
	select {
	case r.restart <- struct{}{}:
	default:
	}
}

// restartWanted reports whether a request to lead again is about the
// latest stint: none has started since it was made.
func (r *replicator) restartWanted() bool { return r.restartFor.Load() >= r.gen.Load() }

// quiesce ends the stint (see endStint) and waits until an entry the
// proposer packed before is in raft's hands: a barrier raft takes after
// quiesce follows every entry of the stint.
func (r *replicator) quiesce(why string) {
	r.endStint(why)
	r.handoff.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the proposer is the point
	r.handoff.Unlock()
}

// propose packs pending transactions into entries and hands them to raft.
func (r *replicator) propose() {
	defer r.wg.Done()
	defer close(r.futures)
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		}
		for {
			// Take a slot first, then pack what waits by then: while
			// the entries in flight are stored and replicated, the
			// writers that arrive meanwhile gather into the next one.
			// With nothing to pack, give the slot back and wait for
			// work.
			select {
			case r.sem <- struct{}{}:
			case <-r.done:
				return
			}
			r.handoff.Lock()
			r.mu.Lock()
			nonce := r.accepting.Load()
			if len(r.pending) == 0 || nonce == 0 {
				r.mu.Unlock()
				r.handoff.Unlock()
				<-r.sem
				break
			}
			var b entryBuilder
			k := 0
			for k < len(r.pending) && k < maxEntryTxs && (k == 0 || len(b.recs)+len(r.pending[k].rec) <= maxEntryBytes) {
				b.add(r.pending[k].rec, r.pending[k].rev)
				k++
			}
			r.pending = r.pending[k:]
			prev := r.prev
			r.prev = nonce
			r.mu.Unlock()
			if r.beforeApply != nil {
				r.beforeApply()
			}
			r.futures <- proposal{r.raft.Apply(b.encode(nonce, prev), 0), b.first, b.last, nonce}
			r.handoff.Unlock()
		}
	}
}

// proposal is an entry handed to raft.
type proposal struct {
	f           raft.ApplyFuture
	first, last int64
	nonce       uint64
}

// collect waits for the proposed entries in turn, to bound how many are
// in flight. Their outcome reaches the writers through the FSM, except
// for an entry that never reached the log, whose writers learn at once
// that it did not commit: raft refused it (ErrNotLeader, or
// ErrLeadershipTransferInProgress while this node hands leadership on),
// or the leader's log store did, the disk being full (errLogRefused; the
// leader then steps down). An entry refused by a transfer leaves a gap
// in the stint, whose later entries every node will skip: the node is
// asked to lead again, should it still lead when the transfer ends.
func (r *replicator) collect() {
	defer r.wg.Done()
	for p := range r.futures {
		err := p.f.Error()
		transfer := errors.Is(err, raft.ErrLeadershipTransferInProgress)
		if transfer || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, errLogRefused) {
			r.mu.Lock()
			r.failRange(p.first, p.last, p.nonce, "was refused: "+err.Error())
			r.mu.Unlock()
		}
		if transfer {
			// About the stint of that entry, if it is still the
			// latest: one started since, after the refusal, has no
			// gap, and one that broke has asked already.
			r.stintMu.Lock()
			if p.nonce == r.stint {
				r.askRestart(r.gen.Load())
			}
			r.stintMu.Unlock()
		}
		<-r.sem
	}
}
