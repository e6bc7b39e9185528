package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Segment header layout; see the package comment.
const (
	segmentMagic      = "LIVEKVW"
	SegmentVersion    = 1
	SegmentHeaderSize = 20
)

// AppendSegmentHeader appends the header of a segment whose first record
// has revision first.
func AppendSegmentHeader(dst []byte, first int64) []byte {
	var h [SegmentHeaderSize]byte
	copy(h[:7], segmentMagic)
	h[7] = SegmentVersion
	binary.LittleEndian.PutUint64(h[8:16], uint64(first))
	binary.LittleEndian.PutUint32(h[16:20], crc32.Checksum(h[:16], castagnoli))
	return append(dst, h[:]...)
}

// DecodeSegmentHeader decodes a segment header and returns its first
// revision. Any damage is ErrCorrupt: a segment's header is written and
// synced before any record, so a bad one is never a torn tail.
func DecodeSegmentHeader(b []byte) (first int64, err error) {
	if len(b) < SegmentHeaderSize {
		return 0, fmt.Errorf("%w: segment header of %d bytes, want %d", ErrCorrupt, len(b), SegmentHeaderSize)
	}
	if string(b[:7]) != segmentMagic {
		return 0, fmt.Errorf("%w: not a livekv log segment (magic %q)", ErrCorrupt, b[:7])
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:20]) {
		return 0, fmt.Errorf("%w: segment header checksum mismatch", ErrCorrupt)
	}
	if b[7] != SegmentVersion {
		return 0, fmt.Errorf("%w: segment format version %d, this build reads %d", ErrCorrupt, b[7], SegmentVersion)
	}
	first = int64(binary.LittleEndian.Uint64(b[8:16]))
	if first < 1 {
		return 0, fmt.Errorf("%w: segment first revision %d", ErrCorrupt, first)
	}
	return first, nil
}
