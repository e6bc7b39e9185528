package cluster_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/livekv/livekv/cluster"
)

// A one-node cluster: the same API as three nodes, without the failover.
func Example() {
	dir, _ := os.MkdirTemp("", "livekv-cluster")
	defer os.RemoveAll(dir)
	ln, _ := net.Listen("tcp", "127.0.0.1:0") // a free port for the example
	addr := ln.Addr().String()
	n, err := cluster.Open(filepath.Join(dir, "n1"), &cluster.Options{
		NodeID:   "n1",
		RaftAddr: addr,
		Peers:    []cluster.Peer{{ID: "n1", Addr: addr}},
		Profile:  cluster.ProfileLAN,
		Listener: ln,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, _, _ := n.WaitLeader(ctx)
	fmt.Println("leader:", id)
	it, err := n.Set("user:1", `{"name":"Ada"}`, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	got, _ := n.Get("user:1") // linearizable
	stale, _ := n.Get("user:1", cluster.Read(cluster.Stale, cluster.MinRevision(it.Revision)))
	fmt.Println(got.Value, stale.Revision == it.Revision)
	// Output:
	// leader: n1
	// {"name":"Ada"} true
}
