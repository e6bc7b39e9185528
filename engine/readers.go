package engine

import (
	"math"
	"sync"
	"sync/atomic"
)

// readers tracks the revisions of open snapshots, so that writers keep the
// older versions those snapshots may still read and drop the rest.
type readers struct {
	n  atomic.Int64 // open snapshots; lets writers skip mu when there are none
	mu sync.Mutex   // guards revs
	// revs counts open snapshots by revision.
	revs map[int64]int
}

// open registers a snapshot; rev is called under the lock to read its
// revision, so that a writer's oldest() either sees it or runs before it.
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

// oldest returns the lowest revision any open snapshot reads at, or
// math.MaxInt64 when there is none. A snapshot opened after this call reads
// at a revision no lower than the committed one when it was called.
func (r *readers) oldest() int64 {
	if r.n.Load() == 0 {
		return math.MaxInt64
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lo := int64(math.MaxInt64)
	for v := range r.revs {
		if v < lo {
			lo = v
		}
	}
	return lo
}
