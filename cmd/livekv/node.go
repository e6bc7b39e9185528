package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
)

// clusterFlags are serve's cluster-mode flags; without --peers or --join
// serve opens a single database.
type clusterFlags struct {
	node, raft, peers, join, profile, raftLog string
}

// store is what serve serves: a database, or a cluster node.
type store struct {
	store adapter.Store
	db    *engine.DB    // single-node mode
	node  *cluster.Node // cluster mode
}

// local is the database on this machine: the node's own copy in cluster
// mode.
func (s *store) local() *engine.DB {
	if s.node != nil {
		return s.node.DB()
	}
	return s.db
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
		if cf.raftLog != "" && cf.raftLog != string(cluster.LogStoreBolt) {
			return nil, fmt.Errorf("--raft-log needs --peers or --join")
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
	o := &cluster.Options{NodeID: cf.node, RaftAddr: cf.raft, Profile: cluster.Profile(cf.profile),
		LogStore: cluster.LogStore(cf.raftLog), Engine: &engine.Options{Logf: logf}}
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
	// The adapter reads each request through the handle's ReadAt, at the
	// level its client asks for: session (read-your-writes) by default.
	return &store{store: n.With(), node: n}, nil
}

// clusterCmd is livekv cluster status|remove ID|transfer [ID] --raft ADDR.
func clusterCmd(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	addr := fs.String("raft", "127.0.0.1:7001", "the raft address of any node of the cluster")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv cluster status|remove ID|transfer [ID] [--raft HOST:PORT]\n\n"+
			"status prints a node's view of the cluster as JSON; remove takes a member out (a dead node, say);\n"+
			"transfer hands leadership to ID, or to any up-to-date voter.")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	op, rest := args[0], args[1:]
	var id string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	r := cluster.NewRemote(*addr)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	switch op {
	case "status":
		s, err := r.Status(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case "remove":
		if id == "" {
			return errors.New("remove needs the ID of the node to remove")
		}
		return r.RemoveServer(ctx, id)
	case "transfer":
		return r.TransferLeadership(ctx, id)
	}
	fs.Usage()
	return fmt.Errorf("unknown cluster command %q", op)
}
