package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Linearizable reads share quorum rounds: a read joins the next round,
// which starts only after the current one ends, so every read is served
// by a round that began after it did (as the ReadIndex rule needs), and
// any number of concurrent reads cost one or two rounds, not one each.

// coalescer shares rounds of one call among its concurrent callers: one
// round runs at a time, and the callers that arrive meanwhile join the
// next, which starts when the running one ends. The leader's read-index
// rounds and a follower's read-index requests both go through one.
type coalescer[T any] struct {
	mu   sync.Mutex // guards busy and next
	busy bool       // a round runs
	next *round[T]  // the round that starts when the running one ends

	rounds atomic.Int64 // rounds run, for tests
}

// round is one round of a coalescer, shared by the callers that joined
// it.
type round[T any] struct {
	start chan struct{} // closed when the round may run, if its callers run it
	once  sync.Once
	done  chan struct{} // closed when v and err are set
	v     T
	err   error
}

func newRound[T any]() *round[T] {
	return &round[T]{start: make(chan struct{}), done: make(chan struct{})}
}

// join returns the round the caller joins: a new one that it runs at
// once itself (first) when none runs, or else the next one, shared.
func (c *coalescer[T]) join() (r *round[T], first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		c.busy = true
		return newRound[T](), true
	}
	if c.next == nil {
		c.next = newRound[T]()
	}
	return c.next, false
}

// run runs r with f, unless it has run already, then hands on to the
// round that waited for it, if any: with c.mu held, startNext must start
// that one, or return the error its callers get instead (then no round
// runs until the next caller comes).
func (c *coalescer[T]) run(r *round[T], f func() (T, error), startNext func(next *round[T]) error) {
	r.once.Do(func() {
		c.rounds.Add(1)
		r.v, r.err = f()
		close(r.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		next := c.next
		c.next = nil
		if next == nil {
			c.busy = false
			return
		}
		if err := startNext(next); err != nil {
			next.err = err
			close(next.done)
			c.busy = false
		}
	})
}

// sharedReadIndex is leaderReadIndex, with the round shared among the
// concurrent callers; under a lease it takes no round.
func (n *Node) sharedReadIndex() (readIndex, error) {
	if n.leaseValid() {
		return n.committedReadIndex(n.rn.raft.CommitIndex())
	}
	return n.sharedRound()
}

// sharedRound runs leaderReadIndex in a round shared among the
// concurrent callers. The round that waited is run by the first of its
// callers that the running one lets go.
func (n *Node) sharedRound() (readIndex, error) {
	r, first := n.reads.join()
	if !first {
		<-r.start // the running round always hands on to the next
	}
	n.reads.run(r, n.leaderReadIndex, func(next *round[readIndex]) error {
		close(next.start)
		return nil
	})
	return r.v, r.err
}

// remoteReadIndex asks the leader for the read index, sharing the
// request with the concurrent callers the same way: one request is in
// flight at a time, and the reads that arrive meanwhile share the next
// one, which is sent when the running one returns. A read that finds no
// request in flight sends one itself, with its own context; a shared one
// runs in a goroutine of its own, so that a reader that gives up (its
// context ends) never holds up the others. It returns when the round it
// joined returns or ctx ends.
func (n *Node) remoteReadIndex(ctx context.Context) (readIndex, error) {
	r, first := n.remoteReads.join()
	if first {
		n.runRemoteRound(ctx, r)
		return r.v, r.err
	}
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		return readIndex{}, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-n.done:
		return readIndex{}, ErrClosed
	}
}

// unanswered gives a request to the leader that failed on the network
// (the leader did not answer in time: toLeader sends an idempotent
// request again after any other failure) its cluster meaning: no leader
// this node can reach, ErrNoLeader. An error the leader sent, or one
// that says so already, is kept.
func (n *Node) unanswered(err error) error {
	var re *remoteError
	switch {
	case n.closed():
		return ErrClosed
	case errors.As(err, &re), errors.Is(err, ErrNoLeader), errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed):
		return err
	}
	return fmt.Errorf("%w: the leader did not answer: %w", ErrNoLeader, err)
}

// runRemoteRound sends r's read-index request to the leader, then starts
// the round that waited for it, if any, in a goroutine of the node's.
func (n *Node) runRemoteRound(ctx context.Context, r *round[readIndex]) {
	n.remoteReads.run(r, func() (readIndex, error) {
		resp, err := n.toLeader(ctx, &rpcRequest{Op: opReadIndex}, true)
		if err != nil {
			return readIndex{}, n.unanswered(err)
		}
		return readIndex{resp.Index, resp.Rev}, nil
	}, func(next *round[readIndex]) error {
		n.gate.RLock() // Close waits for the node's goroutines once it holds gate
		defer n.gate.RUnlock()
		if n.closed() {
			return ErrClosed
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
			defer cancel()
			n.runRemoteRound(ctx, next)
		}()
		return nil
	})
}
