package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/livekv/livekv/engine"
)

// fsm is the raft state machine over the engine: applying an entry
// publishes it (entries this node executed) or applies it (entries
// another leader executed); snapshots are engine snapshots.
type fsm struct {
	r    *replicator
	db   *engine.DB
	logf func(format string, args ...any)

	applied appliedTracker

	// failed holds the error of the first entry that could not be
	// applied: the node stops serving. Read on every read.
	failed atomic.Pointer[error]

	applyEntry func() // Options.applyEntry

	// onFail, if set, runs once when the node fails to apply an entry,
	// on raft's FSM goroutine: it must not wait for raft.
	onFail atomic.Pointer[func(error)]
}

func newFSM(r *replicator, db *engine.DB, logf func(string, ...any)) *fsm {
	return &fsm{r: r, db: db, logf: logf}
}

func (f *fsm) tracker() *appliedTracker { return &f.applied }

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	defer f.applied.advance(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	if f.applyEntry != nil {
		f.applyEntry()
	}
	if err := f.apply(l.Data); err != nil {
		// The state would diverge from the log: stop serving rather
		// than serve it.
		f.logf("cluster: apply entry %d: %v; the node stops serving", l.Index, err)
		f.fail(err)
		return err
	}
	return nil
}

func (f *fsm) apply(data []byte) error {
	if f.err() != nil {
		return f.err()
	}
	e, err := decodeEntry(data)
	if err != nil {
		return err
	}
	nonce, txs := e.nonce, e.txs
	first, last := txs[0].Revision, txs[len(txs)-1].Revision
	r := f.r
	r.stintMu.Lock()
	if e.prev != r.last || first != r.lastRev+1 {
		// Executed on a state that is not the committed one: a deposed
		// leader's proposal that raft took after the revisions it
		// followed were lost. Every node skips it alike.
		f.logf("cluster: skipping stale entry: revisions %d-%d of stint %x after %x, applied %d of %x", first, last, nonce, e.prev, r.lastRev, r.last)
		if nonce == r.stint && nonce != 0 {
			// This node's own stint broke (an entry of it was refused
			// by a transfer).
			r.breakStint("its stint broke")
		}
		r.stintMu.Unlock()
		r.mu.Lock()
		r.failRange(first, last, nonce, "was executed on a state that did not commit")
		r.mu.Unlock()
		return nil
	}
	if nonce == r.stint && nonce != 0 {
		// What this node executed in its latest stint: make it
		// visible.
		r.rep.Publish(last)
	} else {
		if r.stint != 0 {
			// Another leader's entry while this node still holds a
			// stint: the stint is over, and its tail will never commit.
			r.breakStint("another leader's entry came first")
		}
		for _, tx := range txs {
			if err := r.rep.ApplyCommitted(tx); err != nil {
				r.stintMu.Unlock()
				return fmt.Errorf("revision %d: %w", tx.Revision, err)
			}
		}
	}
	r.last, r.lastRev = nonce, last
	for _, tx := range txs {
		r.lastTime = max(r.lastTime, tx.Time)
	}
	r.appliedRev.Store(last)
	r.stintMu.Unlock()
	r.mu.Lock()
	r.resolve(first, last, nonce)
	r.mu.Unlock()
	return nil
}

// fail stops the node for err, once: it serves nothing more, and
// onFail (if set) takes it out of raft.
func (f *fsm) fail(err error) {
	if f.failed.CompareAndSwap(nil, &err) {
		if on := f.onFail.Load(); on != nil {
			(*on)(err)
		}
	}
}

// whenFailed has on run once the node fails to apply an entry, at once
// if it has already.
func (f *fsm) whenFailed(on func(error)) {
	f.onFail.Store(&on)
	if err := f.err(); err != nil {
		on(err) // failed before: on may run twice, and takes that
	}
}

// err is the error that stopped the node, if any.
func (f *fsm) err() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Snapshot implements raft.FSM: a copy-on-write view of the engine at
// the last applied entry, which Apply published.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	// A node that failed to apply an entry holds a state behind what raft
	// would label the snapshot with: never give it.
	if err := f.err(); err != nil {
		return nil, err
	}
	r := f.r
	r.stintMu.Lock()
	last, lastRev, lastTime := r.last, r.lastRev, r.lastTime
	r.stintMu.Unlock()
	// A writer of this node may not have queued its published commit
	// yet (it does so under the writer lock, right after Append, without
	// blocking, and the commit then makes itself visible): the view must
	// hold every applied revision. Raft calls Snapshot on the goroutine
	// that calls Apply, so lastRev and the node's failure stay as they
	// are meanwhile; the engine wakes the wait when the commit becomes
	// visible, or ends it when the DB closes.
	if f.db.Revision() < lastRev {
		if err := f.err(); err != nil {
			return nil, err
		}
		if err := f.db.WaitRevision(context.Background(), lastRev); err != nil {
			return nil, fmt.Errorf("cluster: snapshot at revision %d: %w", lastRev, err)
		}
	}
	s, err := r.rep.Snapshot()
	if err != nil {
		return nil, err
	}
	if s.Revision() != lastRev {
		s.Close()
		return nil, fmt.Errorf("cluster: snapshot at revision %d, applied %d", s.Revision(), lastRev)
	}
	return fsmSnapshot{s, last, lastTime}, nil
}

// Restore implements raft.FSM: the engine's state is replaced by the
// snapshot, streamed.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var head [8]byte
	if _, err := io.ReadFull(rc, head[:]); err != nil {
		return fmt.Errorf("cluster: snapshot header: %w", err)
	}
	src := bufio.NewReader(rc)
	var lastTime int64 // unknown in a snapshot of an earlier release
	if mark, err := src.Peek(len(clockMark)); err == nil && string(mark) == clockMark {
		var clock [len(clockMark) + 8]byte
		if _, err := io.ReadFull(src, clock[:]); err != nil {
			return fmt.Errorf("cluster: snapshot header: %w", err)
		}
		lastTime = int64(binary.BigEndian.Uint64(clock[len(clockMark):]))
	}
	r := f.r
	r.stintMu.Lock()
	defer r.stintMu.Unlock()
	// No write may get in from here on: it would be speculative on the
	// state the snapshot replaces (Restore abandons what came before).
	r.stint = 0
	r.endStint("a snapshot replaced the state")
	if err := r.rep.Restore(src); err != nil {
		return err
	}
	// The engine's clock does not go below the commits it applied; those
	// of the snapshot it did not apply.
	r.lastTime = lastTime
	if lastTime > r.clockFloor.Load() {
		r.clockFloor.Store(lastTime)
	}
	if r.breaking != nil {
		r.breaking()
	}
	r.last, r.lastRev = binary.BigEndian.Uint64(head[:]), f.db.Revision()
	r.appliedRev.Store(r.lastRev)
	r.mu.Lock() // the stint ended above, and none starts under stintMu
	rev := f.db.Revision()
	// The waiters below rev cannot tell how their revisions ended.
	for wr, w := range r.waiters {
		if wr <= rev && !isDone(w) {
			if w.nonce != 0 {
				w.err = fmt.Errorf("%w: a snapshot replaced the state at revision %d", ErrUncertain, rev)
			}
			close(w.done)
			r.resolved = append(r.resolved, wr)
		}
	}
	r.published = rev
	r.mu.Unlock()
	f.applied.restored()
	return nil
}

// fsmSnapshot is a raft snapshot: the nonce of the entry that holds its
// revision (8 bytes, big endian), clockMark and the newest commit time
// of its revisions (unix ns, 8 bytes, big endian), then the engine
// snapshot. Snapshots of earlier releases lack the clock: the engine
// snapshot, which begins with its own magic, follows the nonce.
type fsmSnapshot struct {
	s        *engine.Snapshot
	last     uint64
	lastTime int64
}

// clockMark begins the commit time in a raft snapshot's header.
const clockMark = "LKVCLOCK"

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	var head [8 + len(clockMark) + 8]byte
	binary.BigEndian.PutUint64(head[:8], s.last)
	copy(head[8:], clockMark)
	binary.BigEndian.PutUint64(head[8+len(clockMark):], uint64(s.lastTime))
	if _, err := sink.Write(head[:]); err != nil {
		sink.Cancel()
		return err
	}
	if err := s.s.Write(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() { s.s.Close() }
