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
// Get reads the newest such revision through a hash index, without a
// lock and without allocating. Range, Prefix and View read one consistent
// snapshot: the database exactly as of one revision, whatever writers do
// while the snapshot is open. Readers never wait for writers.
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
// with a new revision, so that subscribers see the expiry.
package engine
