package engine

import (
	"math"
	"sync"
	"sync/atomic"
)

// readers tracks the revisions of open snapshots, so that publish keeps
// the older versions those snapshots may still read and drops the rest.
type readers struct {
	n  atomic.Int64 // open snapshots, for Stats
	mu sync.Mutex   // guards revs
	// revs counts open snapshots by revision.
	revs map[int64]int
}

// open registers a snapshot; rev is called under the lock to read its
// revision, so that publish, holding the lock while it makes a commit visible,
// either counts it or has made the commit visible before it reads.
func (r *readers) open(rev func() int64) int64 {
	r.n.Add(1)
	r.mu.Lock()
	v := rev()
	if r.revs == nil {
		r.revs = make(map[int64]int)
	}
	r.revs[v]++
	r.mu.Unlock()
	return v
}

func (r *readers) close(rev int64) {
	r.mu.Lock()
	if r.revs[rev]--; r.revs[rev] == 0 {
		delete(r.revs, rev)
	}
	r.mu.Unlock()
	r.n.Add(-1)
}

// oldest is oldestLocked, taking r.mu.
func (r *readers) oldest() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.oldestLocked()
}

// oldestLocked returns the lowest revision any open snapshot reads at, or
// math.MaxInt64 when there is none; r.mu is held. A snapshot opened once
// r.mu goes reads at a revision no lower than the committed one then.
func (r *readers) oldestLocked() int64 {
	lo := int64(math.MaxInt64)
	for v := range r.revs {
		if v < lo {
			lo = v
		}
	}
	return lo
}
