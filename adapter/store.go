package adapter

import (
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// Store is what an Adapter serves: the methods of *engine.DB it calls.
// *engine.DB satisfies it, and so does a cluster node's view at one read
// level (cluster.Node.With), which forwards writes to the leader.
type Store interface {
	Get(key string) (engine.Item, error)
	Set(key, value string, opts *engine.SetOptions) (engine.Item, error)
	CompareAndSwap(key string, rev int64, value string, opts *engine.SetOptions) (engine.Item, error)
	Patch(key, value string) (engine.Item, error)
	Increment(key string, delta int64) (n, rev int64, err error)
	Delete(key string) (rev int64, err error)
	SubscribePatterns(pats []*pattern.Pattern, opts *engine.SubscribeOptions) (*engine.Subscription, error)
	Update(fn func(tx *engine.Tx) error) (rev int64, err error)
	View(fn func(tx *engine.Tx) error) error
}

var _ Store = (*engine.DB)(nil)
