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

// Read levels a client may ask for with consistency= (a query parameter
// of REST requests and WebSocket connections, or a field of a WebSocket
// request). The default is LevelSession.
const (
	// LevelStale reads what the node serving the request has applied.
	LevelStale = "stale"
	// LevelSession is LevelStale after the highest revision the
	// connection has been sent (and any minRevision the request gives):
	// read-your-writes and monotonic reads on any node.
	LevelSession = "session"
	// LevelLeader reads on the leader without asking a quorum.
	LevelLeader = "leader"
	// LevelLinearizable sees every write acknowledged before the read
	// began.
	LevelLinearizable = "linearizable"
)

// Reader is what a Store reads through at one level. It is an alias of an
// unnamed interface, so that a Store in another package (a cluster node's
// Handle) can return one without importing this package.
type Reader = interface {
	Get(key string) (engine.Item, error)
	View(fn func(tx *engine.Tx) error) error
	Revision() int64
}

// ReadLeveler is what a Store implements to read at the level a client
// asks for, as a cluster node's *cluster.Handle does. ReadAt waits until
// a read at level (LevelStale, LevelLeader or LevelLinearizable: the
// adapter turns LevelSession into LevelStale with the session's revision)
// may run, having applied minRevision (0: any), and returns what to read
// through right away; its error says why it may not (the client gets 503).
// A Store without it, such as *engine.DB, holds every write it
// acknowledged: every level reads the same, and minRevision is ignored.
type ReadLeveler interface {
	ReadAt(level string, minRevision int64) (Reader, error)
}
