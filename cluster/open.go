package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livekv/livekv/engine"
)

// Open starts the node opts.NodeID with its raft state in dir: it founds
// a cluster with opts.Peers, joins one through opts.Join, or, with raft
// state in dir, takes up its place again and rebuilds its database from
// the latest raft snapshot and the log after it. Close the node when
// done. Open is OpenContext with context.Background(): a join may hold
// it for up to two minutes.
func Open(dir string, opts *Options) (*Node, error) {
	return OpenContext(context.Background(), dir, opts)
}

// OpenContext is Open, given up once ctx ends: a node still waiting then
// (for a join through opts.Join to be answered, say, or for raft to
// start) is closed, everything it opened with it, and OpenContext
// returns an error that is ctx's to errors.Is. The folder may be opened
// again at once. ctx bounds the opening only: the node it returns runs
// until closed.
func OpenContext(ctx context.Context, dir string, opts *Options) (_ *Node, err error) {
	handed := false // opts.Listener is openNode's to close
	defer func() {
		if err != nil && !handed && opts != nil && opts.Listener != nil {
			opts.Listener.Close() // as the node would have (Options.Listener)
		}
		if cerr := ctx.Err(); err != nil && cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("cluster: open: %w (%w)", cerr, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var n *Node
	sm, err := openStateMachine(&o, func() error { return n.refusal() })
	if err != nil {
		return nil, err
	}
	db, ctl, rep, f, eo := sm.db, sm.ctl, sm.rep, sm.fsm, sm.eo
	handed = true
	n, err = openNode(ctx, dir, &o, f, func(n *Node) {
		n.db, n.ctl, n.rep, n.fsm = db, ctl, rep, f
		f.whenFailed(n.leaveAfterFailure)
		rep.start(n.rn.raft)
		n.wg.Add(1)
		go n.sweep(sweepEvery(&eo))
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return n, nil
}

// stateMachineParts is a node's database as raft's state machine: the
// engine's replica, the replicator the engine hands its commits to, and
// the FSM that applies raft's entries to it.
type stateMachineParts struct {
	eo  engine.Options // the engine's options, Replicator set
	db  *engine.DB
	ctl *engine.Replica
	rep *replicator
	fsm *fsm
}

// openStateMachine opens a node's database and its state machine, as Open
// and Recover run them; notLeader is the error a write gets while this
// node holds no stint of writes. The caller closes db.
func openStateMachine(o *Options, notLeader func() error) (stateMachineParts, error) {
	var sm stateMachineParts
	if o.Engine != nil {
		sm.eo = *o.Engine
	}
	sm.rep = newReplicator(o.WriteTimeout, notLeader)
	sm.rep.beforeApply = o.beforeApply
	sm.eo.Replicator = sm.rep
	// The clock of write transactions and sweeps does not go below the
	// commits of a snapshot restored (fsm.Restore).
	now, floor := sm.eo.Now, &sm.rep.clockFloor
	if now == nil {
		now = time.Now
	}
	sm.eo.Now = func() time.Time {
		t := now()
		if f := floor.Load(); f > t.UnixNano() {
			return time.Unix(0, f)
		}
		return t
	}
	var err error
	if sm.db, sm.ctl, err = engine.OpenReplica(&sm.eo); err != nil {
		return stateMachineParts{}, err
	}
	sm.rep.rep = sm.ctl
	sm.fsm = newFSM(sm.rep, sm.db, o.logf())
	sm.fsm.applyEntry = o.applyEntry
	return sm, nil
}
