// Package wal is livekv's write-ahead log format: record framing, the
// transaction payload, segment headers, and the scan that tells a torn tail
// from corruption. It uses the standard library only.
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
// expiry), each integer a varint:
//
//	revision | unix ns | count | count × (kind | key len | key | value len | value | expires)
//
// # Segment header
//
//	+----------------+-----------+------------------+-----------+
//	| magic "LIVEKVW"| version u8| first revision u64| crc32c u32|
//	+----------------+-----------+------------------+-----------+
//	 7 bytes           1 byte      8 bytes            4 bytes: 20 in all
//
// # Reading a damaged log
//
// Scan reads records until the end. A record that is cut short, zeroed, or
// followed by nothing that parses as a record is a torn tail: a crash
// during the last write, which the caller truncates. A bad record followed
// by a good one is corruption: Scan returns an error that
// errors.Is(err, ErrCorrupt) recognises, naming the offset.
package wal
