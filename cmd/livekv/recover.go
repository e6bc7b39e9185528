package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/livekv/livekv/cluster"
)

// clusterRecover is livekv cluster recover --data DIR --node ID --peers
// ID=HOST:PORT,...: it rewrites a stopped node's membership to the
// surviving voters, after the cluster lost its majority for good.
func clusterRecover(args []string) error {
	fs := flag.NewFlagSet("cluster recover", flag.ContinueOnError)
	data := fs.String("data", "livekv-data", "the stopped node's serve folder (its raft state is in DIR/raft)")
	node := fs.String("node", "", "the node's ID, as serve's --node gave it (default: the --raft address)")
	raftAddr := fs.String("raft", "", "the node's raft address (default: its address in --peers)")
	peers := fs.String("peers", "", "the surviving voters, ID=HOST:PORT,..., this node included; the same list for every survivor")
	raftLog := fs.String("raft-log", "", "the node's raft log store, bolt or wal (default: the one its folder holds)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv cluster recover --data DIR --node ID --peers ID=HOST:PORT,...\n\n"+
			"recover makes the stopped node's cluster the voters in --peers, for a cluster that has lost\n"+
			"its majority for good: stop every surviving node, run recover on each with the same --peers,\n"+
			"then start them again with serve. See docs/cluster.md, \"Majority lost\".")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cf := clusterFlags{node: *node, raft: *raftAddr, peers: *peers, raftLog: *raftLog}
	switch {
	case len(rest) > 0:
		return badUsage(fs, fmt.Sprintf("recover takes no arguments, got %q", rest))
	case *peers == "":
		return badUsage(fs, "give the surviving voters with --peers ID=HOST:PORT,...")
	case *node == "" && *raftAddr == "":
		return badUsage(fs, "give the node's ID with --node")
	}
	// An unknown --raft-log is cluster.ErrInvalidOptions from Recover
	// (cluster.ParseLogStore), a bad command line below; "" means the
	// store the folder holds.
	list, err := cf.peerList()
	if err != nil {
		return badUsage(fs, err.Error())
	}
	id := *node
	if id == "" {
		id = *raftAddr
	}
	dir := filepath.Join(*data, "raft")
	err = cluster.Recover(dir, &cluster.Options{NodeID: id, RaftAddr: *raftAddr, LogStore: cluster.LogStore(*raftLog)}, list)
	if errors.Is(err, cluster.ErrInvalidOptions) {
		return badUsage(fs, err.Error())
	}
	if err != nil {
		return err
	}
	fmt.Printf("livekv: node %s in %s recovered with the voters %s; start it with serve\n", id, *data, *peers)
	return nil
}
