package cluster

import (
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
// concurrent callers.
func (n *Node) sharedReadIndex() (readIndex, error) {
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
