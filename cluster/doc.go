// Package cluster runs livekv on several nodes replicated with
// hashicorp/raft, so that the loss of a minority of them loses no
// acknowledged write.
//
// A *Node has the engine's read and write methods with the same
// signatures, reads taking optional trailing ReadOptions: Linearizable
// (the default: a ReadIndex confirmed by a quorum), Leader (local on the
// leader) or Stale (local anywhere), with MinRevision for
// read-your-writes. Single-operation writes on a follower are forwarded to
// the leader; Update runs only on the leader. Subscriptions work on every
// node with the same events at the same revisions, so a stream resumes on
// any node. Node.With gives a Handle with the engine's exact signatures,
// for interfaces such as adapter.Store; its ReadAt lets the adapter read
// each request at the level its client asks for (adapter.ReadLeveler).
//
// # How a write travels
//
// The leader runs the transaction as a single node does; the engine hands
// its record of post-images to the node's replicator, which packs waiting
// records into one raft entry (group commit) stamped with the leader's
// stint nonce and the nonce of the entry it follows. When raft applies
// the entry, the leader publishes it and its writers return; followers
// apply the records. A writer learns definitely whether its write
// committed (ErrNotCommitted when another leader's entry took its
// revision), or ErrUncertain when it cannot know in time.
//
// # One port per node
//
// Each node serves one TCP port. The first byte of every connection picks
// the service it is for:
//
//	1  raft (hashicorp/raft's NetworkTransport, pooled, not pipelined:
//	   each AppendEntries waits for the answer to the one before)
//	2  the cluster RPC (length-prefixed JSON: join, remove, transfer,
//	   read index, status, forwarded writes)
//
// The node owns every connection it accepts or dials, so Close ends them
// all, and with them every goroutine that served them.
//
// # Storage
//
// A node's directory holds its raft log and stable store, raft.db
// (raft-boltdb, the default) or wal/ (raft-wal, with
// Options.LogStore = LogStoreWAL), and snapshots/, raft's
// FileSnapshotStore, whose snapshots are engine snapshots. The database lives in memory and is
// rebuilt from the newest snapshot and the log after it on start. A
// directory without raft state is bootstrapped with Options.Peers; a
// restarted node takes its membership from its log and ignores Peers.
//
// See docs/cluster.md for the guarantees, operations and what is not done
// yet.
package cluster
