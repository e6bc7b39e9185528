// Package cluster runs livekv on several nodes replicated with
// hashicorp/raft, so that the loss of a minority of them loses no
// acknowledged write.
//
// # One port per node
//
// Each node serves one TCP port. The first byte of every connection picks
// the service it is for:
//
//	1  raft (hashicorp/raft's NetworkTransport, pooled and pipelined)
//	2  the cluster RPC
//
// The node owns every connection it accepts or dials, so Close ends them
// all, and with them every goroutine that served them.
//
// # Storage
//
// A node's directory holds raft.db, the raft log and stable store
// (raft-boltdb), and snapshots/, raft's FileSnapshotStore. A directory
// without raft state is bootstrapped with Options.Peers; a restarted node
// takes its membership from its log and ignores Peers.
//
// See docs/cluster.md for the design, the guarantees and what is not done
// yet.
package cluster
