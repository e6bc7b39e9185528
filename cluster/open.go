package cluster

import (
	"time"

	"github.com/livekv/livekv/engine"
)

// Open starts the node opts.NodeID with its raft state in dir: it founds
// a cluster with opts.Peers, joins one through opts.Join, or, with raft
// state in dir, takes up its place again and rebuilds its database from
// the latest raft snapshot and the log after it. Close the node when
// done.
func Open(dir string, opts *Options) (*Node, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var eo engine.Options
	if o.Engine != nil {
		eo = *o.Engine
	}
	var n *Node
	rep := newReplicator(o.WriteTimeout, func() error { return n.notLeader() })
	eo.Replicator = rep
	db, ctl, err := engine.OpenReplica(&eo)
	if err != nil {
		return nil, err
	}
	rep.rep = ctl
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	f := newFSM(rep, db, logf)
	n, err = openNode(dir, &o, f, func(n *Node) {
		n.db, n.ctl, n.rep, n.fsm = db, ctl, rep, f
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

// sweepEvery is how often the leader sweeps expired keys.
func sweepEvery(o *engine.Options) time.Duration {
	if o.SweepInterval > 0 {
		return o.SweepInterval
	}
	return engine.DefaultSweepInterval
}

// sweep expires keys, on the leader only: the expiries reach the others
// through the log like any write.
func (n *Node) sweep(every time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			for n.isReady() {
				k, err := n.ctl.Sweep()
				if err != nil || k < 1024 {
					break
				}
			}
		}
	}
}
