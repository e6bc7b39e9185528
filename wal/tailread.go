package wal

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// The damaged end of a segment file, read in pieces.
//
// Recovery tells a torn tail from damage by the bytes from the bad record
// to the end of the segment (the rules are in tail.go). A segment file can be far longer than its records (zeros after them to
// a length made durable before the data, or bytes appended by accident),
// so scanFile does not read them whole: restDamage reads the file,
// holding only fixed-size buffers and, for the search for a later record,
// a batch of candidates. Its answers and errors are those of the same
// rules over bytes held whole (verdict_reference_internal_test.go), which
// the tests check it against.

// laterBatch is how many candidate records laterRecordAt checks at a
// time: 24 bytes each, 6 MiB in all. Each batch reads ahead once to the
// end of its longest candidate, so a batch spans as many offsets as it
// can: bytes that frame a candidate at every offset (a value of 0x01
// bytes) cost one read ahead for each laterBatch offsets. A variable so
// that tests can make batches small.
var laterBatch = 1 << 18

// restDamage is the verdict on the bad record at offset off of the
// segment file f, of the given format version, whose records end at size:
// nil if it starts a torn tail, or else an error that wraps ErrCorrupt
// and names the offset (see scanFile). prev is the revision of the last
// good record. err is a failed read.
func restDamage(f io.ReaderAt, off, size int64, version byte, max int, prev int64) (bad, err error) {
	frame, err := frameErrAt(f, off, size, max)
	if err != nil {
		return nil, err
	}
	next, err := laterRecordAt(f, off+1, size, max, prev)
	if err != nil {
		return nil, err
	}
	if next >= 0 {
		return fmt.Errorf("%w: bad record at offset %d (%v) with a good record at offset %d after it",
			ErrCorrupt, off, frame, next), nil
	}
	why, err := tailDamageAt(f, off, size, max, version)
	if err != nil {
		return nil, err
	}
	if why != nil {
		return fmt.Errorf("%w: bad record at offset %d, the last of the segment, is not a torn write: %v",
			ErrCorrupt, off, why), nil
	}
	return nil, nil
}

// frameErrAt returns what decodeRecord finds wrong with the record at
// offset off of f, whose bytes end at size, without reading its payload
// into memory.
func frameErrAt(f io.ReaderAt, off, size int64, max int) (error, error) {
	var h [recordHeaderSize]byte
	hdr := h[:min(size-off, recordHeaderSize)]
	if err := readFullAt(f, hdr, off); err != nil {
		return nil, err
	}
	if len(hdr) < recordHeaderSize {
		if allZero(hdr) {
			return errZero, nil
		}
		return errShort, nil
	}
	length := binary.LittleEndian.Uint32(hdr[0:4])
	crc := binary.LittleEndian.Uint32(hdr[4:8])
	switch {
	case length == 0 && crc == 0 && hdr[8] == 0:
		return errZero, nil
	case uint64(length) > uint64(max):
		return errTooLarge, nil
	case off+recordHeaderSize+int64(length) > size:
		return errShort, nil
	}
	sums, err := checksumsAt(f, off+8, []int64{off + recordHeaderSize + int64(length)})
	switch {
	case err != nil:
		return nil, err
	case sums[0] != crc:
		return errChecksum, nil
	case hdr[8] != typeTx:
		return errType, nil
	}
	return nil, nil
}

// laterCandidate is a place where a record may start: its header's
// offset, where its payload ends, its checksum, and the checksum of the
// bytes before its type byte (from the batch's start).
type laterCandidate struct {
	at, end int64
	want    uint32
	pre     uint32
}

// laterRecordAt returns the offset in f of the first whole valid record
// between offsets from and to whose revision is after prev, or -1,
// reading the bytes in pieces.
func laterRecordAt(f io.ReaderAt, from, to int64, max int, prev int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var batch []laterCandidate
	for s := from; to-s >= recordHeaderSize; {
		n := min(int64(len(buf)), to-s)
		if err := readFullAt(f, buf[:n], s); err != nil {
			return -1, err
		}
		for j := int64(0); j+recordHeaderSize <= n; j++ {
			h := buf[j:]
			if h[8] != typeTx {
				continue
			}
			length := binary.LittleEndian.Uint32(h[0:4])
			at := s + j
			if uint64(length) > uint64(max) || at+recordHeaderSize+int64(length) > to {
				continue
			}
			batch = append(batch, laterCandidate{at: at, end: at + recordHeaderSize + int64(length), want: binary.LittleEndian.Uint32(h[4:8])})
			if len(batch) == laterBatch {
				if found, err := firstLater(f, batch, prev); found >= 0 || err != nil {
					return found, err
				}
				batch = batch[:0]
			}
		}
		s += n - (recordHeaderSize - 1) // the next piece starts at the first offset not tried
	}
	if len(batch) == 0 {
		return -1, nil
	}
	return firstLater(f, batch, prev)
}

// firstLater returns the offset of the first of the candidates, in
// order of offset, that is a whole valid record of a revision after prev,
// or -1. It reads f once from the first one's type byte to the end of the
// longest, keeping the checksum of what it has read: a candidate's
// checksum comes from that at its type byte and that at its end (see
// crcrange.go).
func firstLater(f io.ReaderAt, cands []laterCandidate, prev int64) (int64, error) {
	byEnd := make([]int32, len(cands))
	for i := range byEnd {
		byEnd[i] = int32(i)
	}
	slices.SortFunc(byEnd, func(a, b int32) int { return cmp.Compare(cands[a].end, cands[b].end) })
	base := cands[0].at + 8
	last := cands[byEnd[len(byEnd)-1]].end
	r := bufio.NewReaderSize(io.NewSectionReader(f, base, last-base), 64<<10)
	pos, sum := base, uint32(0)
	advance := func(to int64) error {
		for pos < to {
			p, err := r.Peek(int(min(to-pos, int64(r.Size()))))
			sum = crc32.Update(sum, castagnoli, p)
			pos += int64(len(p))
			r.Discard(len(p))
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the file shrank
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	found := int64(-1)
	next := 0 // the next candidate whose type byte is yet to come
	for _, k := range byEnd {
		c := &cands[k]
		for ; next < len(cands) && cands[next].at+8 <= c.end; next++ {
			if err := advance(cands[next].at + 8); err != nil {
				return -1, err
			}
			cands[next].pre = sum
		}
		if found >= 0 && c.at > found {
			continue
		}
		if err := advance(c.end); err != nil {
			return -1, err
		}
		if sum^shiftBytes(c.pre, int(c.end-c.at-8)) != c.want {
			continue
		}
		var p [binary.MaxVarintLen64]byte
		payload := p[:min(c.end-c.at-recordHeaderSize, int64(len(p)))]
		if err := readFullAt(f, payload, c.at+recordHeaderSize); err != nil {
			return -1, err
		}
		if revisionOf(payload, prev) > prev {
			found = c.at
		}
	}
	return found, nil
}

// tailDamageAt looks at the bytes of f from a bad record at offset off to
// the end of the last segment at size, with no good record after it, in a
// segment of the given format version, reading them in pieces. It returns
// nil if they can be what an interrupted append left (a torn tail), or
// else why not, by the rules in tail.go; err is a failed read.
func tailDamageAt(f io.ReaderAt, off, size int64, max int, version byte) (why, err error) {
	n := size - off
	z, err := zeroRunAt(f, off, size)
	if err != nil {
		return nil, err
	}
	var h [recordHeaderSize]byte
	if z < recordHeaderSize {
		return nil, nil
	}
	if err := readFullAt(f, h[:], off); err != nil {
		return nil, err
	}
	if allZero(h[:]) {
		return nil, nil
	}
	length := binary.LittleEndian.Uint32(h[0:4])
	crc := binary.LittleEndian.Uint32(h[4:8])
	if recordHeaderSize+int64(length) > n {
		ends := shortEnds(length, n)
		sums, err := checksumsAt(f, off+8, offsetBy(ends, off))
		if err != nil {
			return nil, err
		}
		for i, sum := range sums {
			if sum == crc {
				return fmt.Errorf("its length %d runs past the end of the file, but its first %d bytes are a whole record with a good checksum: a damaged length",
					length, ends[i]), nil
			}
		}
		return nil, nil
	}
	end := recordHeaderSize + int64(length)
	// One pass for the checksums of the record, of the record less its
	// last byte (zerosCanHideSums) and of it cut at each length with one
	// bit cleared (shortEnds): those come first, in order.
	ends := shortEnds(length, end)
	sums, err := checksumsAt(f, off+8, offsetBy(append(ends, end-1, end), off))
	if err != nil {
		return nil, err
	}
	sum, butLast := sums[len(sums)-1], sums[len(sums)-2]
	whole := sum == crc
	switch {
	case uint64(length) > uint64(max) && whole:
		return fmt.Errorf("a whole record of %d bytes, over the limit of %d (written with a larger MaxRecord?)", length, max), nil
	case uint64(length) > uint64(max):
		return fmt.Errorf("its length %d, over the limit of %d, lies within the file", length, max), nil
	case whole:
		return fmt.Errorf("%w %d", errType, h[8]), nil
	case z >= end:
		return errors.New("checksum mismatch in a record whose bytes are all there, which an interrupted write does not leave"), nil
	}
	for i := range ends {
		if sums[i] == crc {
			return fmt.Errorf("it ends in zeros that run to the end of the file, but its first %d bytes are a whole record with a good checksum: a damaged length",
				ends[i]), nil
		}
	}
	trailer := version >= segmentVersion
	if !zerosCanHideSums(sum, butLast, end-8, end-z, crc, trailer) {
		if trailer {
			return errors.New("checksum mismatch in a record that ends in zeros, which no bytes ending in the trailer in their place would give: not an interrupted write"), nil
		}
		return errors.New("checksum mismatch in a record that ends in zeros, which no bytes in their place would give: not an interrupted write"), nil
	}
	return nil, nil
}

// shortEnds returns, in order, where a record whose length is length with
// one of its set bits cleared ends, for those that end by limit. A write
// cut short has a checksum that matches at one of them by chance only, at
// odds of about one in 2^32 for each.
func shortEnds(length uint32, limit int64) []int64 {
	var ends []int64
	for i := range 32 {
		short := length &^ (1 << i)
		if short != length && recordHeaderSize+int64(short) <= limit {
			ends = append(ends, recordHeaderSize+int64(short))
		}
	}
	slices.Sort(ends)
	return ends
}

// offsetBy returns the offsets rel, each moved on by off.
func offsetBy(rel []int64, off int64) []int64 {
	abs := make([]int64, len(rel))
	for i, r := range rel {
		abs[i] = off + r
	}
	return abs
}

// zeroRunAt returns where, counted from off, the run of zero bytes that
// ends f at size starts: size-off if there are none, 0 if all are zero.
// It reads from the end, in pieces.
func zeroRunAt(f io.ReaderAt, off, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > off; {
		start := max(off, end-int64(len(buf)))
		b := buf[:end-start]
		if err := readFullAt(f, b, start); err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1 - off, nil
			}
		}
		end = start
	}
	return 0, nil
}

// checksumsAt returns the checksums of the bytes of f from offset from to
// each of the offsets ends, in order and none before from, reading them
// once, in pieces.
func checksumsAt(f io.ReaderAt, from int64, ends []int64) ([]uint32, error) {
	sums := make([]uint32, len(ends))
	buf := make([]byte, 64<<10)
	var sum uint32
	at := from
	for i, end := range ends {
		for at < end {
			b := buf[:min(int64(len(buf)), end-at)]
			if err := readFullAt(f, b, at); err != nil {
				return nil, err
			}
			sum = crc32.Update(sum, castagnoli, b)
			at += int64(len(b))
		}
		sums[i] = sum
	}
	return sums, nil
}
