package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Linearizable reads share quorum rounds: a read joins the next round,
// which starts only after the current one ends, so every read is served
// by a round that began after it did (as the ReadIndex rule needs), and
// any number of concurrent reads cost one or two rounds, not one each.

// readRounds coalesces the leader's read-index rounds.
type readRounds struct {
	mu   sync.Mutex // guards busy and next
	busy bool       // a round runs
	next *readRound // the round that starts when the running one ends

	rounds atomic.Int64 // rounds run, for tests
}

type readRound struct {
	start chan struct{} // closed when the round may run
	once  sync.Once
	ri    readIndex
	err   error
}

func newReadRound() *readRound { return &readRound{start: make(chan struct{})} }

// sharedReadIndex is leaderReadIndex, with the round shared among the
// concurrent callers; under a lease it takes no round.
func (n *Node) sharedReadIndex() (readIndex, error) {
	if n.leaseValid() {
		return n.localReadIndex(), nil
	}
	return n.sharedRound()
}

// sharedRound runs leaderReadIndex in a round shared among the
// concurrent callers.
func (n *Node) sharedRound() (readIndex, error) {
	v := &n.reads
	v.mu.Lock()
	var r *readRound
	if !v.busy {
		v.busy = true
		r = newReadRound()
		close(r.start)
	} else {
		if v.next == nil {
			v.next = newReadRound()
		}
		r = v.next
	}
	v.mu.Unlock()
	<-r.start // the running round always hands on to the next
	r.once.Do(func() { n.runReadRound(r) })
	return r.ri, r.err
}

// runReadRound runs r, then starts the round that waited for it.
func (n *Node) runReadRound(r *readRound) {
	v := &n.reads
	v.rounds.Add(1)
	r.ri, r.err = n.leaderReadIndex()
	v.mu.Lock()
	next := v.next
	v.next = nil
	if next == nil {
		v.busy = false
	}
	v.mu.Unlock()
	if next != nil {
		close(next.start)
	}
}

// remoteRounds coalesces a follower's read-index requests to the leader
// the same way: one request is in flight at a time, and the reads that
// arrive meanwhile share the next one, which is sent when the running one
// returns. A read that finds no request in flight sends one itself, with
// its own context; a shared one runs in a goroutine of its own, so that a
// reader that gives up (its context ends) never holds up the others.
type remoteRounds struct {
	mu   sync.Mutex   // guards busy and next
	busy bool         // a request is in flight
	next *remoteRound // the round that starts when the running one ends

	rounds atomic.Int64 // requests sent, for tests
}

type remoteRound struct {
	done chan struct{} // closed when ri and err are set
	ri   readIndex
	err  error
}

// remoteReadIndex asks the leader for the read index, sharing the
// request with the concurrent callers; it returns when the round it
// joined returns or ctx ends.
func (n *Node) remoteReadIndex(ctx context.Context) (readIndex, error) {
	v := &n.remoteReads
	v.mu.Lock()
	if !v.busy {
		v.busy = true
		v.mu.Unlock()
		r := remoteRound{}
		n.runRemoteRound(ctx, &r)
		return r.ri, r.err
	}
	if v.next == nil {
		v.next = &remoteRound{done: make(chan struct{})}
	}
	r := v.next
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.ri, r.err
	case <-ctx.Done():
		return readIndex{}, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-n.done:
		return readIndex{}, ErrClosed
	}
}

// runRemoteRound sends one read-index request to the leader, then starts
// the round that waited for it, if any, in a goroutine of the node's.
func (n *Node) runRemoteRound(ctx context.Context, r *remoteRound) {
	v := &n.remoteReads
	v.rounds.Add(1)
	resp, err := n.toLeader(ctx, &rpcRequest{Op: opReadIndex}, true)
	if err == nil {
		r.ri = readIndex{resp.Index, resp.Rev}
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	next := v.next
	v.next = nil
	if next == nil {
		v.busy = false
		return
	}
	n.gate.RLock() // Close waits for the node's goroutines once it holds gate
	defer n.gate.RUnlock()
	if n.closed() {
		next.err = ErrClosed
		close(next.done)
		v.busy = false
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
		defer cancel()
		n.runRemoteRound(ctx, next)
	}()
}
