package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestNode_MinRevisionWakes: reads that wait for a revision return as it
// becomes visible, on a follower that applies it and on the leader that
// executed it (where it becomes visible only once its writer has queued
// it, after its entry applied); a wait far ahead ends with ErrClosed when
// the node closes.
func TestNode_MinRevisionWakes(t *testing.T) {
	c := newDBCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	c.caughtUp()
	base := c.nodes[l].Revision()
	const writes = 20
	type read struct {
		node int
		rev  int64
		it   engine.Item
		err  error
		took time.Duration
	}
	reads := make(chan read, 2*writes)
	for _, i := range []int{l, f} {
		for k := int64(1); k <= writes; k++ {
			go func() {
				start := time.Now()
				it, err := c.nodes[i].Get(fmt.Sprint("k", k), Read(Stale, MinRevision(base+k)))
				reads <- read{i, base + k, it, err, time.Since(start)}
			}()
		}
	}
	far := make(chan error, 1)
	go func() { _, err := c.nodes[f].Get("x", Read(Stale, MinRevision(base+1000))); far <- err }()
	time.Sleep(20 * time.Millisecond) // the reads wait
	for k := int64(1); k <= writes; k++ {
		it, err := c.nodes[l].Set(fmt.Sprint("k", k), "v", nil)
		require.NoError(t, err)
		require.Equal(t, base+k, it.Revision)
	}
	for range 2 * writes {
		r := <-reads
		require.NoError(t, r.err, "node %d, revision %d", r.node, r.rev)
		require.Equal(t, r.rev, r.it.Revision, "node %d", r.node)
		require.Less(t, r.took, c.nodes[r.node].opts.WriteTimeout, "node %d, revision %d", r.node, r.rev)
	}
	select {
	case err := <-far:
		t.Fatalf("a read of a revision far ahead returned: %v", err)
	default:
	}
	c.kill(f)
	require.ErrorIs(t, <-far, ErrClosed)
}
