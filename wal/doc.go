// Package wal is livekv's write-ahead log: record framing, the transaction
// payload, segment headers, the scan that tells a torn tail from
// corruption, snapshots, and Log, which writes segments in groups, rotates
// them, replaces them with snapshots and replays both on Open. It keeps
// its files in a vfs.FS and otherwise uses the standard library only.
//
// # Records
//
// A segment is a header followed by records:
//
//	+-----------+-----------+--------+------------------+
//	| length u32| crc32c u32| type u8| payload (length) |
//	+-----------+-----------+--------+------------------+
//	 little-endian; crc32c (Castagnoli) covers type and payload
//
// A transaction record's payload holds its revision, its commit time and
// the post-images of its writes (the value, or a deletion, and the
// expiry), each integer a varint, then a trailer byte, 0xFF:
//
//	revision | unix ns | count | count × (kind | key len | key | value len | value | expires) | 0xFF
//	  kind: 1 put, 2 patch, 3 increment, 4 delete, 5 expire; +0x80 if the transaction created the key
//
// The trailer makes every record end in a byte that is not zero, so that
// one ending in zeros can only be a write cut short (see below).
//
// # Segment header
//
//	+----------------+-----------+------------------+-----------+
//	| magic "LIVEKVW"| version u8| first revision u64| crc32c u32|
//	+----------------+-----------+------------------+-----------+
//	 7 bytes           1 byte      8 bytes            4 bytes: 20 in all
//
// The log writes version 2. It still reads version 1, whose transaction
// payloads have no trailer, so that logs written before it open: each
// segment is read in its own version, and after Open new records always
// go to a new segment, so a version-1 segment is never appended to.
//
// # Snapshots
//
// A snapshot has a header like a segment's (magic "LIVEKVS", the
// snapshot's revision), then one record of type 2 (item) per key in key
// order, then a record of type 3 (snapshot) holding the number of items:
//
//	item payload: key len | key | value len | value | revision | create revision | version | expires
//
// It is written to a temporary file, synced, renamed and its directory
// synced before the segments it covers are removed; see Log.Snapshot.
// Segments that Log.Retain asks for stay, although a snapshot covers
// them: Open hands their records to Replay.History, for a history of
// changes that outlives a restart.
//
// # Reading a damaged log
//
// The log reads a segment's records until the end. A bad record followed
// by a good one is corruption, an error that errors.Is(err, ErrCorrupt)
// recognises, naming the offset (see Open and Check). A bad record with
// nothing good after it is a torn tail, which Open truncates, only if its
// bytes are what a crash during the last write leaves: a prefix of what
// was written, then the end of the file or zeros to it. So a record is
// torn if its header is incomplete or all zero, if its length runs past
// the end of the file, or if it ends in zeros that run to the end of the
// file and some bytes in their place (in version 2, bytes ending in the
// trailer) would make its checksum match; unless clearing one bit of its
// length gives a whole record with a good checksum: a flipped length bit.
// A last record that is all there and fails its checksum otherwise, after
// a flipped bit say, is corruption like any other. In version 2 that is
// every flip of a bit of the last record: a whole record there never ends
// in a zero byte, and no single flip makes the trailer one. In version 1 a
// record ends in zeros when its last write has no expiry or is a delete,
// and a flip before four or more such zeros cannot be told from a torn
// write (fewer hide it by chance).
package wal
