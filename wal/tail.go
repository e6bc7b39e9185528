package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// What an interrupted append leaves behind.
//
// The log appends a group of whole records with one write, then fsyncs.
// A crash before the fsync returns keeps a prefix of what was written
// since the last one: the file ends early (its length was never updated
// past that point; vfs.MemFS.Crash), or its length covers the whole
// write but the data did not reach the disk and reads back as zeros from
// some point to the end of the file (a file system that made the new
// length durable before the data, as XFS can; vfs.MemFS.CrashZeroFilled).
// Either way, from the first bad record on, the file holds true bytes of
// records and then nothing or only zeros. A bad last record whose bytes cannot be such a
// prefix was damaged after it was written: tailDamage tells the two
// apart.
//
// Borrowed, and where it differs: etcd's WAL decoder (server/storage/wal
// decoder.go) also takes a length that runs past the end of the file for
// a torn write, and a checksum mismatch for one only if zeros can explain
// it (isTornEntry: some 512-byte sector of the record is all zero). Here
// the zeros must run to the end of the file, and must be able to hide the
// checksum; and a length past the end is checked for a single flipped bit,
// which etcd does not. pebble's record reader (record/record.go) takes a
// chunk header that is all zero for space never written (ErrZeroedChunk),
// as here, and reads ahead for a later good chunk to tell corruption from
// an unclean end, as scan does with findRecord.

// tailDamage looks at b, the bytes from a bad record to the end of the
// last segment, with no good record after it, in a segment of the given
// format version. It returns nil if they can be what an interrupted
// append left (a torn tail), or else why not:
//
//   - fewer bytes than a header, a header all zero, or zeros from inside
//     the header to the end: the record was not, or not wholly, written;
//   - a length that runs past the end of the file: the write was cut
//     short, unless clearing one bit of the length gives a record that
//     lies in the file and whose checksum matches: then it is a whole
//     record with a flipped length bit;
//   - a length over max, within the file: damage, since the log writes no
//     such record (a whole one, with a good checksum, was written with a
//     larger limit than the reader's, which the error says);
//   - a whole record whose checksum fails is damage, unless it ends in
//     zeros that run to the end of the file, some bytes in their place
//     would make the checksum match (a crash that zeroed them would have
//     left the same bytes) and no flipped bit of its length explains it
//     (as above, for a length that set a bit and now reaches into zeros
//     after the record).
//
// In a segmentVersion segment every transaction payload ends in a
// trailer byte that is not zero (txTrailer), and the bytes in place of the
// zeros must end in it: so a whole record whose checksum fails is damage
// unless its last byte is zero, which one flipped bit cannot make of the
// trailer, and a flip of any bit of the last record is found. In a
// segmentVersionNoTrailer segment a record ends in zeros when its last
// write has no expiry, is a delete, or has a value that ends in zeros:
// four or more zero bytes always could hide the checksum, so a flip
// before them cannot be told from a torn write; k < 4 could by chance,
// for about one flip in 2^(32-8k).
//
// A whole record with a good checksum is damage too (its type is wrong):
// the checksum says it is what was written.
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

// zerosCanHide reports whether some k bytes in place of the k zero bytes
// that end msg would give it the checksum want; with trailer, only bytes
// whose last is txTrailer count, as the last byte of every whole record
// of a segmentVersion segment is.
//
// A CRC is affine over GF(2): flipping bit j of msg's last k bytes changes
// the checksum by a fixed delta[j], whatever the other bytes hold. So the
// question is whether checksum(msg) XOR want is a sum of some deltas,
// which Gaussian elimination on at most 32 vectors of 32 bits answers.
// Four free bytes always suffice (the CRC's register update is
// invertible, so any 32 consecutive bits can be chosen to give any
// checksum, whatever fixed bytes follow them), which is why only four are
// tried.
func zerosCanHide(msg []byte, k int, want uint32, trailer bool) bool {
	var butLast uint32
	if len(msg) > 0 {
		butLast = crc32.Checksum(msg[:len(msg)-1], castagnoli)
	}
	return zerosCanHideSums(crc32.Checksum(msg, castagnoli), butLast, int64(len(msg)), int64(k), want, trailer)
}

// zerosCanHideSums is zerosCanHide of a message of msgLen bytes given
// its checksum, sum, and that of all but its last byte, butLast.
func zerosCanHideSums(sum, butLast uint32, msgLen, k int64, want uint32, trailer bool) bool {
	k = min(k, msgLen)
	fixed := 0 // bytes at the end whose value is known: the trailer
	if trailer {
		if k == 0 {
			return false
		}
		fixed = 1
		sum = crc32.Update(butLast, castagnoli, []byte{txTrailer})
	}
	free := int(min(k-int64(fixed), 4))
	var tail [5]byte
	n := free + fixed // the tail: free bytes, then the fixed ones, all zero here
	zero := crc32.Checksum(tail[:n], castagnoli)
	var basis [32]uint32 // basis[i]: a sum of deltas whose highest set bit is i
	for j := range 8 * free {
		tail = [5]byte{}
		tail[j/8] = 1 << (j % 8)
		v := crc32.Checksum(tail[:n], castagnoli) ^ zero
		for i := 31; i >= 0 && v != 0; i-- {
			if v>>i&1 == 0 {
				continue
			}
			if basis[i] == 0 {
				basis[i] = v
				break
			}
			v ^= basis[i]
		}
	}
	target := sum ^ want
	for i := 31; i >= 0; i-- {
		if target>>i&1 == 1 {
			if basis[i] == 0 {
				return false
			}
			target ^= basis[i]
		}
	}
	return true
}
