package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// The verdict on a damaged segment tail, over bytes held whole: the
// reference that recovery's reading in pieces (scanFile, restDamage,
// laterRecordAt, tailDamageAt) must agree with, call for call and error
// for error. It is the simplest statement of the rules, kept to be
// checked against, not used by the log.

// scan is scanFile over the segment body b (the bytes after the
// header) held whole, base being its offset in the file; fn is also given
// each record's type.
func scan(b []byte, base int64, version byte, max int, prev int64, fn func(typ byte, payload []byte) error) (scanResult, error) {
	var r scanResult
	off := 0
	for off < len(b) {
		typ, payload, n, err := decodeRecord(b[off:], max)
		if err != nil {
			r.Good = base + int64(off)
			if next := laterRecord(b[off+1:], max, prev); next >= 0 {
				return r, fmt.Errorf("%w: bad record at offset %d (%v) with a good record at offset %d after it",
					ErrCorrupt, base+int64(off), err, base+int64(off+1+next))
			}
			if why := tailDamage(b[off:], max, version); why != nil {
				return r, fmt.Errorf("%w: bad record at offset %d, the last of the segment, is not a torn write: %v",
					ErrCorrupt, base+int64(off), why)
			}
			r.Torn = true
			return r, nil
		}
		if err := fn(typ, payload); err != nil {
			r.Good = base + int64(off)
			return r, err
		}
		prev = revisionOf(payload, prev)
		off += n
		r.Records++
	}
	r.Good = base + int64(off)
	return r, nil
}

// laterRecord returns the offset of the first whole valid record in b
// whose revision is after prev, or -1.
func laterRecord(b []byte, max int, prev int64) int {
	return findRecordWhere(b, max, func(at int) bool {
		_, payload, _, _ := decodeRecord(b[at:], max)
		return revisionOf(payload, prev) > prev
	})
}

// tailDamage looks at b, the bytes from a bad record to the end of the
// last segment, with no good record after it, in a segment of the given
// format version. It returns nil if they can be what an interrupted
// append left (a torn tail), or else why not, by the rules in tail.go.
func tailDamage(b []byte, max int, version byte) error {
	z := len(b) // b[z:] is the run of zero bytes that ends the file
	for z > 0 && b[z-1] == 0 {
		z--
	}
	if z < recordHeaderSize || allZero(b[:recordHeaderSize]) {
		return nil
	}
	length := binary.LittleEndian.Uint32(b[0:4])
	crc := binary.LittleEndian.Uint32(b[4:8])
	if uint64(recordHeaderSize)+uint64(length) > uint64(len(b)) {
		if n, ok := lengthBitFlipped(b, length, crc); ok {
			return fmt.Errorf("its length %d runs past the end of the file, but its first %d bytes are a whole record with a good checksum: a damaged length",
				length, recordHeaderSize+n)
		}
		return nil
	}
	end := recordHeaderSize + int(length)
	whole := crc32.Checksum(b[8:end], castagnoli) == crc
	switch {
	case uint64(length) > uint64(max) && whole:
		return fmt.Errorf("a whole record of %d bytes, over the limit of %d (written with a larger MaxRecord?)", length, max)
	case uint64(length) > uint64(max):
		return fmt.Errorf("its length %d, over the limit of %d, lies within the file", length, max)
	case whole:
		return fmt.Errorf("%w %d", errType, b[8])
	case z >= end:
		return errors.New("checksum mismatch in a record whose bytes are all there, which an interrupted write does not leave")
	}
	if n, ok := lengthBitFlipped(b[:end], length, crc); ok {
		return fmt.Errorf("it ends in zeros that run to the end of the file, but its first %d bytes are a whole record with a good checksum: a damaged length",
			recordHeaderSize+n)
	}
	trailer := version >= segmentVersion
	if !zerosCanHide(b[8:end], end-z, crc, trailer) {
		if trailer {
			return errors.New("checksum mismatch in a record that ends in zeros, which no bytes ending in the trailer in their place would give: not an interrupted write")
		}
		return errors.New("checksum mismatch in a record that ends in zeros, which no bytes in their place would give: not an interrupted write")
	}
	return nil
}

// lengthBitFlipped reports whether clearing one bit of length gives a
// record that lies within b and whose checksum is crc, and its length.
// A write cut short passes this by chance only, at odds of about one in
// 2^32 for each bit tried: those of the checksum itself.
func lengthBitFlipped(b []byte, length, crc uint32) (int, bool) {
	var ends []int
	for i := range 32 {
		short := length &^ (1 << i)
		if short != length && uint64(recordHeaderSize)+uint64(short) <= uint64(len(b)) {
			ends = append(ends, recordHeaderSize+int(short))
		}
	}
	slices.Sort(ends)
	sum, at := uint32(0), 8
	for _, end := range ends {
		sum = crc32.Update(sum, castagnoli, b[at:end]) // one pass over b, however many candidates
		at = end
		if sum == crc {
			return end - recordHeaderSize, true
		}
	}
	return 0, false
}

// zerosCanHide is zerosCanHideSums of msg, whose last k bytes are zero.
func zerosCanHide(msg []byte, k int, want uint32, trailer bool) bool {
	var butLast uint32
	if len(msg) > 0 {
		butLast = crc32.Checksum(msg[:len(msg)-1], castagnoli)
	}
	return zerosCanHideSums(crc32.Checksum(msg, castagnoli), butLast, int64(len(msg)), int64(k), want, trailer)
}

// prefixCRC gives the checksum of any section of b (section) from the
// checksums of b's prefixes, kept at every prefixStep-th offset: 4 bytes
// for each 64 of b.
type prefixCRC struct {
	b     []byte
	marks []uint32 // marks[j]: the checksum of b[:j*prefixStep]
}

const prefixStep = 64

func newPrefixCRC(b []byte) *prefixCRC {
	p := &prefixCRC{b: b, marks: make([]uint32, 1, len(b)/prefixStep+1)}
	var c uint32
	for off := prefixStep; off <= len(b); off += prefixStep {
		c = crc32.Update(c, castagnoli, b[off-prefixStep:off])
		p.marks = append(p.marks, c)
	}
	return p
}

// prefix returns the checksum of b[:n].
func (p *prefixCRC) prefix(n int) uint32 {
	j := n / prefixStep
	return crc32.Update(p.marks[j], castagnoli, p.b[j*prefixStep:n])
}

// section returns the checksum of b[s:e], as crc32.Checksum(b[s:e],
// castagnoli) would, in time independent of e-s but for a logarithm.
func (p *prefixCRC) section(s, e int) uint32 {
	return p.prefix(e) ^ shiftBytes(p.prefix(s), e-s)
}

// findRecord returns the offset of the first position in b where a whole
// valid record starts (one that decodeRecord accepts), or -1.
func findRecord(b []byte, max int) int {
	return findRecordWhere(b, max, func(int) bool { return true })
}

// findRecordWhere is findRecord, but skips the whole valid records at
// offsets for which ok is false; one pass over b, however many it skips.
func findRecordWhere(b []byte, max int, ok func(at int) bool) int {
	var sums *prefixCRC // made once a candidate needs it
	for i := 0; i+recordHeaderSize <= len(b); i++ {
		h := b[i:]
		if h[8] != typeTx {
			continue
		}
		length := binary.LittleEndian.Uint32(h[0:4])
		if uint64(length) > uint64(max) || uint64(length) > uint64(len(h)-recordHeaderSize) {
			continue
		}
		if sums == nil {
			sums = newPrefixCRC(b)
		}
		end := i + recordHeaderSize + int(length)
		if sums.section(i+8, end) == binary.LittleEndian.Uint32(h[4:8]) && ok(i) {
			return i
		}
	}
	return -1
}
