// Package engine is livekv's embeddable key-value store: an ordered map of
// string keys to string values, safe for many goroutines, with atomic
// read-modify-write operations, multi-key transactions, expiring keys and
// consistent range scans.
//
// Open with a directory keeps every acknowledged write in a write-ahead log
// (package wal) and replays it on the next Open; with "" the database lives
// in memory only.
//
// # Revisions
//
// Every committed write transaction takes the next value of one global
// counter, its revision; all of its writes carry it. An Item records the
// revision of its key's last change (Revision), the revision that created
// the key (CreateRevision) and how many changes it has had (Version).
// CompareAndSwap compares revisions.
//
// # Reads
//
// Readers see a transaction once it is committed and, on disk, durable.
// Get reads the newest such revision through a hash index, without
// allocating and under no lock but its index shard's read lock, which a
// writer holds for a map insert at most. Range, Prefix and View read one
// consistent snapshot: the database exactly as of one revision, whatever
// writers do while the snapshot is open. Readers never wait for writers.
//
// # Writes
//
// Writes run one transaction at a time (Update), so transactions are
// serializable. An error or a panic in an Update function rolls it back:
// nothing it wrote becomes visible, and no revision is used.
//
// # Expiry
//
// A key written with a TTL is invisible to every read from the instant it
// expires. A background sweeper then removes it as a change of its own,
// with a new revision, so that subscribers see the expiry. A replica
// (OpenReplica) differs: there a key is there until its expiry commits.
//
// # Backup and replicas
//
// DB.Backup writes a consistent snapshot at one revision while writers go
// on, and RestoreDir makes a folder from one that Open opens at exactly
// that revision. OpenReplica opens a database whose commits a replicated
// log keeps durable instead of the write-ahead log (Options.Replicator),
// with a *Replica to control it; package cluster builds on it. See
// docs/durability.md.
package engine
