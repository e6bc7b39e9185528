package cluster

import (
	"iter"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// Handle is a Node whose reads run with fixed read options. Its methods
// have the exact signatures of engine.DB's, so it fits an interface that
// *engine.DB satisfies, such as adapter.Store.
type Handle struct {
	n    *Node
	opts []ReadOption
}

// With returns a handle on n whose reads use opts.
func (n *Node) With(opts ...ReadOption) *Handle {
	return &Handle{n: n, opts: append([]ReadOption(nil), opts...)}
}

// Node is the node the handle reads and writes through.
func (h *Handle) Node() *Node { return h.n }

// Get is Node.Get with the handle's read options.
func (h *Handle) Get(key string) (engine.Item, error) { return h.n.Get(key, h.opts...) }

// Range is Node.Range with the handle's read options.
func (h *Handle) Range(start, end string, o *engine.RangeOptions) (iter.Seq2[engine.Item, error], error) {
	return h.n.Range(start, end, o, h.opts...)
}

// Prefix is Node.Prefix with the handle's read options.
func (h *Handle) Prefix(prefix string, o *engine.RangeOptions) (iter.Seq2[engine.Item, error], error) {
	return h.n.Prefix(prefix, o, h.opts...)
}

// View is Node.View with the handle's read options.
func (h *Handle) View(fn func(tx *engine.Tx) error) error { return h.n.View(fn, h.opts...) }

// Set is Node.Set.
func (h *Handle) Set(key, value string, o *engine.SetOptions) (engine.Item, error) {
	return h.n.Set(key, value, o)
}

// PutIfAbsent is Node.PutIfAbsent.
func (h *Handle) PutIfAbsent(key, value string, o *engine.SetOptions) (engine.Item, error) {
	return h.n.PutIfAbsent(key, value, o)
}

// CompareAndSwap is Node.CompareAndSwap.
func (h *Handle) CompareAndSwap(key string, rev int64, value string, o *engine.SetOptions) (engine.Item, error) {
	return h.n.CompareAndSwap(key, rev, value, o)
}

// Patch is Node.Patch.
func (h *Handle) Patch(key, value string) (engine.Item, error) { return h.n.Patch(key, value) }

// Increment is Node.Increment.
func (h *Handle) Increment(key string, delta int64) (n, rev int64, err error) {
	return h.n.Increment(key, delta)
}

// Delete is Node.Delete.
func (h *Handle) Delete(key string) (int64, error) { return h.n.Delete(key) }

// Update is Node.Update: only on the leader.
func (h *Handle) Update(fn func(tx *engine.Tx) error) (int64, error) { return h.n.Update(fn) }

// Subscribe is Node.Subscribe.
func (h *Handle) Subscribe(patterns []string, o *engine.SubscribeOptions) (*engine.Subscription, error) {
	return h.n.Subscribe(patterns, o)
}

// SubscribePatterns is Node.SubscribePatterns.
func (h *Handle) SubscribePatterns(pats []*pattern.Pattern, o *engine.SubscribeOptions) (*engine.Subscription, error) {
	return h.n.SubscribePatterns(pats, o)
}

// Reader is what ReadAt returns: reads that run at once. It is an alias
// of an unnamed interface, the same as adapter.Reader, so that a Handle
// satisfies adapter.ReadLeveler without either package importing the
// other.
type Reader = interface {
	Get(key string) (engine.Item, error)
	View(fn func(tx *engine.Tx) error) error
	Revision() int64
}

// ReadAt waits until a read at level (a Consistency's name:
// "linearizable", "leader" or "stale") may run on this node, having
// applied revision minRev (0: any), and returns the node's database to
// read through at once. Its errors are those of Get at that level: a
// *NotLeaderError for "leader" off the leader, ErrBehind, ErrNoLeader. The
// adapter calls it to serve each request at the level its client asks
// for; the handle's own options do not apply.
func (h *Handle) ReadAt(level string, minRev int64) (Reader, error) {
	c, err := ParseConsistency(level)
	if err != nil {
		return nil, err
	}
	if err := h.n.readyFor(readConfig{level: c, minRev: minRev}); err != nil {
		return nil, err
	}
	return h.n.db, nil
}

// Revision is the newest revision the node has applied.
func (h *Handle) Revision() int64 { return h.n.Revision() }
