package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Segment header layout; see the package comment.
const (
	segmentMagic = "LIVEKVW"
	// segmentVersion is the format of the segments the log writes: its
	// transaction payloads end in a trailer byte (see appendTx), so that
	// no whole record ends in a zero byte.
	segmentVersion = 2
	// segmentVersionNoTrailer is the first format, whose transaction
	// payloads end with the last write's expiry. Its segments are still
	// read, never written.
	segmentVersionNoTrailer = 1
	segmentHeaderSize       = 20
)

// appendSegmentHeader appends the header, in the current segmentVersion,
// of a segment whose first record has revision first.
func appendSegmentHeader(dst []byte, first int64) []byte {
	return appendHeader(dst, segmentMagic, segmentVersion, first)
}

// decodeSegmentHeader decodes a segment header and returns its first
// revision and its format version, segmentVersionNoTrailer or
// segmentVersion: the version decides how its records are read (see tail.go
// and decodeTx). Any damage, or another version, is ErrCorrupt: a
// segment's header is written and synced before any record, so a bad one
// is never a torn tail (a last segment no longer than a header, which holds
// no record, is not read: see scanSegment).
func decodeSegmentHeader(b []byte) (first int64, version byte, err error) {
	return decodeHeader(b, "log segment", segmentMagic, segmentVersionNoTrailer, segmentVersion, 1)
}

// A header, of a segment or a snapshot: a 7-byte magic, a format version,
// a revision and a checksum of what precedes it.
func appendHeader(dst []byte, magic string, version byte, rev int64) []byte {
	var h [segmentHeaderSize]byte
	copy(h[:7], magic)
	h[7] = version
	binary.LittleEndian.PutUint64(h[8:16], uint64(rev))
	binary.LittleEndian.PutUint32(h[16:20], crc32.Checksum(h[:16], castagnoli))
	return append(dst, h[:]...)
}

// decodeHeader accepts the versions oldest to newest and revisions from
// minRev on.
func decodeHeader(b []byte, what, magic string, oldest, newest byte, minRev int64) (rev int64, version byte, err error) {
	if len(b) < segmentHeaderSize {
		return 0, 0, fmt.Errorf("%w: %s header of %d bytes, want %d", ErrCorrupt, what, len(b), segmentHeaderSize)
	}
	if string(b[:7]) != magic {
		return 0, 0, fmt.Errorf("%w: not a livekv %s (magic %q)", ErrCorrupt, what, b[:7])
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return 0, 0, fmt.Errorf("%w: %s header checksum mismatch", ErrCorrupt, what)
	}
	if version = b[7]; version < oldest || version > newest {
		return 0, 0, fmt.Errorf("%w: %s format version %d, this build reads %s", ErrCorrupt, what, version, versions(oldest, newest))
	}
	rev = int64(binary.LittleEndian.Uint64(b[8:16]))
	if rev < minRev {
		return 0, 0, fmt.Errorf("%w: %s revision %d", ErrCorrupt, what, rev)
	}
	return rev, version, nil
}

func versions(oldest, newest byte) string {
	if oldest == newest {
		return strconv.Itoa(int(newest))
	}
	return fmt.Sprintf("%d to %d", oldest, newest)
}
