package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
)

// clusterFlags are serve's cluster-mode flags; without --peers or --join
// serve opens a single database.
type clusterFlags struct {
	node, raft, peers, join, profile string
}

// store is what serve serves: a database, or a cluster node.
type store struct {
	store adapter.Store
	db    *engine.DB    // single-node mode
	node  *cluster.Node // cluster mode
}

func (s *store) revision() int64 {
	if s.node != nil {
		return s.node.Revision()
	}
	return s.db.Revision()
}

func (s *store) Close() error {
	if s.node != nil {
		return s.node.Close()
	}
	return s.db.Close()
}

// openStore opens the database in dir, or, with cluster flags, the
// cluster node whose raft state is in dir/raft. A node serves reads at
// the linearizable level and forwards writes to the leader.
func openStore(dir string, logf func(string, ...any), cf clusterFlags) (*store, error) {
	if cf.peers == "" && cf.join == "" {
		if cf.node != "" || cf.raft != "" {
			return nil, fmt.Errorf("--node and --raft need --peers or --join")
		}
		db, err := engine.Open(dir, &engine.Options{Logf: logf})
		if err != nil {
			return nil, err
		}
		return &store{store: db, db: db}, nil
	}
	if cf.raft == "" {
		return nil, fmt.Errorf("cluster mode needs --raft HOST:PORT")
	}
	o := &cluster.Options{NodeID: cf.node, RaftAddr: cf.raft, Profile: cluster.Profile(cf.profile), Engine: &engine.Options{Logf: logf}}
	if o.NodeID == "" {
		o.NodeID = cf.raft
	}
	if cf.peers != "" {
		for _, p := range strings.Split(cf.peers, ",") {
			id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT", p)
			}
			o.Peers = append(o.Peers, cluster.Peer{ID: id, Addr: addr})
		}
	}
	if cf.join != "" {
		o.Join = strings.Split(cf.join, ",")
	}
	n, err := cluster.Open(filepath.Join(dir, "raft"), o)
	if err != nil {
		return nil, err
	}
	return &store{store: n.With(cluster.Linearizable), node: n}, nil
}
