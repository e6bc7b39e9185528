package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/wire"
)

// Single-operation writes, which a follower forwards to the leader. A
// write refused on the state it found (engine.ErrNotFound, ErrConflict,
// ErrNotInteger, ErrOverflow) returns, as its revision (the Item's, or
// rev), the leader's revision when it refused: the state the answer
// reflects, which a session's later reads must not go below (the
// adapter gives it to the client). engine.DB returns 0 there.
const (
	opSet         = "set"
	opPutIfAbsent = "putifabsent"
	opCAS         = "cas"
	opPatch       = "patch"
	opIncrement   = "incr"
	opDelete      = "delete"
)

// Set sets key to value, as engine.DB.Set does, on the leader: a follower
// forwards it.
func (n *Node) Set(key, value string, opts *engine.SetOptions) (engine.Item, error) {
	res, err := n.write(&rpcRequest{Op: opSet, Key: wireString(key), Value: wireString(value), TTL: ttl(opts)})
	return res.item(), err
}

// PutIfAbsent sets key only if it does not exist, as engine.DB.PutIfAbsent.
func (n *Node) PutIfAbsent(key, value string, opts *engine.SetOptions) (engine.Item, error) {
	res, err := n.write(&rpcRequest{Op: opPutIfAbsent, Key: wireString(key), Value: wireString(value), TTL: ttl(opts)})
	return res.item(), err
}

// CompareAndSwap sets key only if its revision is rev, as
// engine.DB.CompareAndSwap.
func (n *Node) CompareAndSwap(key string, rev int64, value string, opts *engine.SetOptions) (engine.Item, error) {
	res, err := n.write(&rpcRequest{Op: opCAS, Key: wireString(key), Rev: rev, Value: wireString(value), TTL: ttl(opts)})
	return res.item(), err
}

// Patch merges a JSON patch into key's value, as engine.DB.Patch.
func (n *Node) Patch(key, value string) (engine.Item, error) {
	res, err := n.write(&rpcRequest{Op: opPatch, Key: wireString(key), Value: wireString(value)})
	return res.item(), err
}

// Increment adds delta to key's integer value, as engine.DB.Increment.
func (n *Node) Increment(key string, delta int64) (v, rev int64, err error) {
	res, err := n.write(&rpcRequest{Op: opIncrement, Key: wireString(key), Delta: delta})
	return res.N, res.Revision, err
}

// Delete deletes key, as engine.DB.Delete.
func (n *Node) Delete(key string) (rev int64, err error) {
	res, err := n.write(&rpcRequest{Op: opDelete, Key: wireString(key)})
	return res.Revision, err
}

// Update runs fn in a write transaction, as engine.DB.Update. A Go
// function cannot be forwarded, so only the leader runs it: elsewhere it
// returns a *NotLeaderError naming the leader. A leader handing on
// leadership, or starting its writes anew, waits up to the write timeout
// for its next stint of writes before it runs fn; should the stint end
// while fn runs, Update returns ErrNotCommitted (fn ran once, and nothing
// of it committed).
func (n *Node) Update(fn func(tx *engine.Tx) error) (int64, error) {
	if fn == nil {
		return 0, fmt.Errorf("%w: Update of a nil function", engine.ErrInvalidOptions)
	}
	if err := n.leading(); err != nil {
		return 0, err
	}
	rev, err := n.db.Update(fn)
	return rev, writeError(err)
}

func ttl(o *engine.SetOptions) time.Duration {
	if o == nil {
		return 0
	}
	return o.TTL
}

func (r *result) item() engine.Item {
	if r == nil {
		return engine.Item{}
	}
	return engine.Item{Key: string(r.Key), Value: string(r.Value), Revision: r.Revision, CreateRevision: r.CreateRevision, Version: r.Version, ExpiresAt: r.ExpiresAt}
}

// itemResultOf is itemResult of a write's item, with its error.
func itemResultOf(it engine.Item, err error) (*result, error) { return itemResult(it), err }

func itemResult(it engine.Item) *result {
	return &result{Key: wireString(it.Key), Value: wireString(it.Value), Revision: it.Revision, CreateRevision: it.CreateRevision, Version: it.Version, ExpiresAt: it.ExpiresAt}
}

// leading returns nil if this node leads and takes writes, waiting up to
// the write timeout for a new leader's barrier, or for the next stint of
// a leader handing on leadership or starting its writes anew, else why
// not (refusal).
func (n *Node) leading() error { return n.leadingWithin(n.opts.WriteTimeout) }

// leadingWithin is leading, waiting at most wait.
func (n *Node) leadingWithin(wait time.Duration) error {
	if err := n.usable(); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for n.IsLeader() && !n.writable() && time.Now().Before(deadline) && !n.closed() {
		time.Sleep(time.Millisecond)
	}
	if n.writable() {
		return nil
	}
	return n.refusal()
}

// writable reports whether this node is ready as leader and holds a stint
// of writes: a leader handing leadership on, or starting its writes anew
// (Node.lead), has none for a while.
func (n *Node) writable() bool {
	return n.isReady() && (n.rep == nil || n.rep.accepts())
}

// errBetweenStints refuses a write on a leader that holds no stint of
// writes: a transfer of leadership is under way, or the node is starting
// its writes anew. Nothing was done; the next stint may take it.
var errBetweenStints = fmt.Errorf("%w: the leader is between two stints of writes (handing on leadership, or starting anew)", ErrNotCommitted)

// refusal is the error for a write this node cannot take: a leader
// between stints refuses it as not committed (a *NotLeaderError would name
// the node itself), any other node as not the leader.
func (n *Node) refusal() error {
	if !n.closed() && n.IsLeader() {
		return errBetweenStints
	}
	return n.notLeader()
}

// usable returns why the node cannot serve at all, or nil.
func (n *Node) usable() error {
	if n.closed() {
		return ErrClosed
	}
	if n.fsm == nil {
		return nil
	}
	if err := n.fsm.err(); err != nil {
		// Out of raft too (leaveAfterFailure): the client goes to
		// another node.
		return fmt.Errorf("%w: this node stopped after a failure to apply: %w", ErrNoLeader, err)
	}
	return nil
}

// leaveAfterFailure takes this node out of the cluster once it failed to
// apply an entry: its state is behind the log and would diverge, so it
// must not lead, vote, or take a snapshot (fsm.Snapshot refuses). raft
// stops; the node serves nothing (usable), and its subscriptions end
// with ErrNoLeader (watchLeader), so that clients resume on another
// node. Restarted, it replays the log from its last snapshot. It runs
// on raft's FSM goroutine, so it does not wait for raft to stop.
func (n *Node) leaveAfterFailure(err error) {
	n.opts.logf()("cluster: node %s leaves raft after a failure to apply: %v", n.opts.NodeID, err)
	n.rn.stop()
}

// write runs a single-operation write here if this node leads, or on the
// leader.
func (n *Node) write(req *rpcRequest) (*result, error) {
	res := &result{}
	if err := n.usable(); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	for {
		if n.IsLeader() {
			// Waiting for the next stint within what is left of the
			// write's timeout, however often its stint ends under it.
			r, err := n.executeWithin(req, time.Until(deadline))
			if errors.Is(err, errBetweenStints) && ctx.Err() == nil {
				continue
			}
			if !errors.Is(err, ErrNotLeader) {
				return r, writeError(err)
			}
			// Refused before anything was done: it may go elsewhere.
		}
		resp, err := n.toLeader(ctx, req, false)
		if err == nil {
			if resp.Result == nil {
				return res, fmt.Errorf("cluster: the leader sent no result")
			}
			return resp.Result, nil
		}
		var re *remoteError
		switch {
		case errors.As(err, &re) && wire.Refused(err) && resp != nil:
			res.Revision = resp.Rev // the leader's, which the refusal reflects
			return res, err
		case errors.As(err, &re), errors.Is(err, ErrNoLeader), errors.Is(err, ErrClosed), errors.Is(err, engine.ErrTooLarge):
			return res, err
		case errors.Is(err, ErrNotLeader):
			// The leader we asked moved on before doing anything;
			// toLeader gives up only when ctx ends.
			return res, err
		default:
			// The request may have reached the leader.
			return res, fmt.Errorf("%w: %w", ErrUncertain, err)
		}
	}
}

// forwardedWaitFor is how long a leader waits to take a write forwarded
// by another node (for a new leader's barrier, or the next stint) before
// it refuses it as not the leader, naming itself, and the forwarding node
// asks again (every 20 ms) within its own write timeout: half of left,
// what the forwarding node said it still waits, and at most
// forwardedWait (also for a node that said nothing, left 0). A write
// taken later could commit after the forwarding node gave up on it,
// which would leave it uncertain.
func forwardedWaitFor(left time.Duration) time.Duration {
	if left <= 0 {
		return forwardedWait
	}
	return min(forwardedWait, left/2)
}

// forwardedWait is the longest forwardedWaitFor gives.
const forwardedWait = 250 * time.Millisecond

// executeWithin runs a single-operation write on this node, which must
// lead, waiting at most wait for it to take writes (leadingWithin).
func (n *Node) executeWithin(req *rpcRequest, wait time.Duration) (*result, error) {
	res := &result{}
	if err := n.leadingWithin(wait); err != nil {
		return res, err
	}
	var so *engine.SetOptions
	if req.TTL != 0 {
		so = &engine.SetOptions{TTL: req.TTL}
	}
	var err error
	key, value := string(req.Key), string(req.Value)
	switch req.Op {
	case opSet:
		res, err = itemResultOf(n.db.Set(key, value, so))
	case opPutIfAbsent:
		res, err = itemResultOf(n.db.PutIfAbsent(key, value, so))
	case opCAS:
		res, err = itemResultOf(n.db.CompareAndSwap(key, req.Rev, value, so))
	case opPatch:
		res, err = itemResultOf(n.db.Patch(key, value))
	case opIncrement:
		res.N, res.Revision, err = n.db.Increment(key, req.Delta)
	case opDelete:
		res.Revision, err = n.db.Delete(key)
	default:
		return res, fmt.Errorf("cluster: unknown write %q", req.Op)
	}
	if wire.Refused(err) {
		// The answer reflects this node's state: at least the revision
		// it has published since, which the writer's session takes.
		res.Revision = n.db.Revision()
	}
	return res, err
}

// writeError gives a write's error its cluster meaning: the engine's
// ErrAbandoned (another leader's commit took the revision) is
// ErrNotCommitted.
func writeError(err error) error {
	if errors.Is(err, engine.ErrAbandoned) && !errors.Is(err, ErrNotCommitted) {
		return fmt.Errorf("%w: %w", ErrNotCommitted, err)
	}
	return err
}

// Consistency is how fresh a read must be.
type Consistency int

// Read consistency levels.
const (
	// Linearizable reads see every write acknowledged before they began,
	// on any node: the node learns the leader's commit index, which the
	// leader confirms with a quorum, and waits to have applied it
	// (ReadIndex). Costs one quorum round trip. The default.
	Linearizable Consistency = iota

	// Leader reads locally on the leader without asking a quorum. A
	// leader cut off in a minority may serve stale data until it notices
	// (about a leader lease), and a write a follower applied before the
	// leader did is missing here until the leader applies it. A leader
	// just elected waits for its barrier first. Other nodes return a
	// *NotLeaderError.
	Leader

	// Stale reads what this node has applied, on any node, at no cost.
	// MinRevision makes it wait for a revision (read-your-writes).
	Stale
)

// String is the level's name: "linearizable", "leader" or "stale".
func (c Consistency) String() string {
	switch c {
	case Linearizable:
		return "linearizable"
	case Leader:
		return "leader"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// ParseConsistency returns the level a name from String names.
func ParseConsistency(s string) (Consistency, error) {
	for _, c := range []Consistency{Linearizable, Leader, Stale} {
		if s == c.String() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown consistency %.40q: give linearizable, leader or stale", ErrInvalidOptions, s)
}

// ReadOption is a read's consistency level or MinRevision; the options
// are this package's types, matched by readConfig.add.
type ReadOption interface{ readOption() }

type readConfig struct {
	level  Consistency
	minRev int64
}

func (Consistency) readOption() {}

type minRevision int64

func (minRevision) readOption() {}

// MinRevision makes a read wait until this node has applied revision rev
// (up to Options.WriteTimeout, else ErrBehind): with the revision of a
// write it gives read-your-writes at any level.
func MinRevision(rev int64) ReadOption { return minRevision(rev) }

type readOptions []ReadOption

func (readOptions) readOption() {}

// add applies opts to c. The options of this package are matched by
// type, so that c stays on the caller's stack.
func (c *readConfig) add(opts []ReadOption) {
	for _, o := range opts {
		switch v := o.(type) {
		case Consistency:
			c.level = v
		case minRevision:
			c.minRev = max(c.minRev, int64(v))
		case readOptions:
			c.add(v)
		}
	}
}

// Read combines read options into one.
func Read(opts ...ReadOption) ReadOption { return readOptions(opts) }

// errNotCaughtUp refuses a read on a node that has not caught up with the
// leader since it started.
var errNotCaughtUp = fmt.Errorf("%w: this node has not caught up with the leader since it started", ErrBehind)

// readReady waits until a read with opts may run here. A read that
// needs no wait (a stale read on a node that has caught up, with a
// minimum revision it has applied) takes no timer, context or
// allocation.
func (n *Node) readReady(opts []ReadOption) error {
	var c readConfig
	c.add(opts)
	return n.readyFor(c)
}

// readyFor is readReady with the options applied.
func (n *Node) readyFor(c readConfig) error {
	if err := n.usable(); err != nil {
		return err
	}
	switch c.level {
	case Linearizable:
		// Under a lease the leader's visible state is linearizable as
		// it is once it holds every committed entry: no timer, context
		// or allocation.
		if n.leaseValid() && c.minRev <= n.db.Revision() && n.showsCommitted() {
			return nil
		}
	case Leader:
		if !n.isReady() && !n.IsLeader() {
			return n.notLeader()
		}
		if n.isReady() && c.minRev <= n.db.Revision() {
			return nil
		}
	case Stale:
		if n.served.Load() && c.minRev <= n.db.Revision() {
			return nil
		}
		if !n.served.Load() && c.minRev == 0 {
			return errNotCaughtUp
		}
	default:
		return fmt.Errorf("%w: consistency %d", ErrInvalidOptions, c.level)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.WriteTimeout)
	defer cancel()
	switch c.level {
	case Linearizable:
		if err := n.linearize(ctx); err != nil {
			return err
		}
	case Leader:
		if err := n.readyLeader(ctx); err != nil {
			return err
		}
	case Stale:
		// A node that has not caught up since it started serves no read;
		// one that asks for a revision may wait for that.
		select {
		case <-n.caughtUp:
		case <-ctx.Done():
			if !n.served.Load() {
				return errNotCaughtUp
			}
		}
	}
	if c.minRev > 0 {
		return n.waitRevision(ctx, c.minRev)
	}
	return nil
}

// readyLeader waits until this node, leading, has applied its barrier
// (isReady): a leader that has not serves nothing yet, and refusing it as
// not the leader would name the node itself. A node that does not lead,
// or no longer, is not the leader.
func (n *Node) readyLeader(ctx context.Context) error {
	for n.IsLeader() && !n.isReady() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the leader is not ready yet: %w", ErrNoLeader, ctx.Err())
		case <-n.done:
			return ErrClosed
		case <-time.After(time.Millisecond):
		}
	}
	if !n.isReady() {
		return n.notLeader()
	}
	return nil
}

// waitRevision waits until this node has applied revision rev and made
// it visible. The engine wakes it when a commit becomes visible: a
// revision this node executed becomes so a moment after its entry
// applied, once its writer has queued it.
func (n *Node) waitRevision(ctx context.Context, rev int64) error {
	err := n.db.WaitRevision(ctx, rev)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrClosed) || n.closed():
		return ErrClosed
	}
	return fmt.Errorf("%w: at revision %d, asked for %d", ErrBehind, n.db.Revision(), rev)
}

// Get returns key's item, as engine.DB.Get, at the consistency opts ask
// (Linearizable by default).
func (n *Node) Get(key string, opts ...ReadOption) (engine.Item, error) {
	if err := n.readReady(opts); err != nil {
		return engine.Item{}, err
	}
	return n.db.Get(key)
}

// Range scans keys in [start, end), as engine.DB.Range, at the
// consistency opts ask.
func (n *Node) Range(start, end string, ro *engine.RangeOptions, opts ...ReadOption) (iter.Seq2[engine.Item, error], error) {
	if err := n.readReady(opts); err != nil {
		return nil, err
	}
	return n.db.Range(start, end, ro)
}

// Prefix scans the keys that start with prefix, as engine.DB.Prefix, at
// the consistency opts ask.
func (n *Node) Prefix(prefix string, ro *engine.RangeOptions, opts ...ReadOption) (iter.Seq2[engine.Item, error], error) {
	if err := n.readReady(opts); err != nil {
		return nil, err
	}
	return n.db.Prefix(prefix, ro)
}

// View runs fn in a read-only transaction, as engine.DB.View, at the
// consistency opts ask.
func (n *Node) View(fn func(tx *engine.Tx) error, opts ...ReadOption) error {
	if err := n.readReady(opts); err != nil {
		return err
	}
	return n.db.View(fn)
}

// Revision is the newest revision this node has applied.
func (n *Node) Revision() int64 { return n.db.Revision() }

// Stats returns the node's database statistics. A node's log is raft's,
// so LogBytes is the size of its log store's files, Syncs counts the
// appends to that store (each written and synced as one) and SyncLatency
// how long they took, and Checkpoints counts the raft snapshots
// persisted since Open, taken by the node or received from a leader.
func (n *Node) Stats() engine.Stats {
	st := n.db.Stats()
	rn := n.rn
	lat := rn.store.appendStats()
	st.SyncLatency = engine.SyncLatency(lat)
	for _, n := range lat.Counts {
		st.Syncs += n // each append counted once in the histogram
	}
	st.Checkpoints = rn.snapsWritten.Load()
	st.LogBytes = logStoreBytes(rn.dir, rn.opts.LogStore)
	return st
}

// DB is the node's database, for reads that need none of the cluster's
// checks. Writing through it works only on the leader.
func (n *Node) DB() *engine.DB { return n.db }
