package engine

import (
	"context"
	"sync/atomic"
)

// revWaiters wakes the goroutines in WaitRevision when the visible
// revision moves. A waiter installs a channel, or takes the one
// installed; whatever moves db.committed swaps it out and closes it. Both
// sides use atomics only, so with nobody waiting the cost to a commit is
// one atomic load: no lock, no allocation.
//
// A waiter loads db.committed after it holds the channel, and a publisher
// loads the channel after it stores db.committed: Go's atomics are
// sequentially consistent, so either the waiter sees the new revision or
// the publisher sees, and closes, the waiter's channel.
type revWaiters struct {
	ch atomic.Pointer[chan struct{}]
}

// wait returns the channel that the next wake closes.
func (w *revWaiters) wait() <-chan struct{} {
	for {
		if p := w.ch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if w.ch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// wake wakes every waiter; call it after storing db.committed.
func (w *revWaiters) wake() {
	if p := w.ch.Load(); p != nil && w.ch.CompareAndSwap(p, nil) {
		close(*p)
	}
}

// WaitRevision returns nil once revision rev is visible (Revision() >=
// rev): reads see its writes, and a subscription made from now on starts
// after it (its events reach the subscriptions made before a moment
// later). It returns ctx's error if ctx ends first, and ErrClosed if the
// DB is closed first. A revision already visible returns nil at once,
// whatever ctx. It takes no lock and starts no goroutine: it is woken
// where a commit becomes visible.
func (db *DB) WaitRevision(ctx context.Context, rev int64) error {
	for {
		if db.committed.Load() >= rev {
			return nil
		}
		if db.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		ch := db.revWaiters.wait()
		if db.committed.Load() >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-db.stop:
			// Close may still publish what waited for the disk: the
			// loop looks at the revision before it reports ErrClosed.
			if db.committed.Load() >= rev {
				return nil
			}
			return ErrClosed
		case <-ctx.Done():
			if db.committed.Load() >= rev {
				return nil
			}
			return ctx.Err()
		}
	}
}
