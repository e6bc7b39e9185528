package wal

import "hash/crc32"

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
// records and then nothing or only zeros. A bad last record whose bytes
// cannot be such a prefix was damaged after it was written, and recovery
// tells the two apart (restDamage, in tailread.go) by these rules, over
// the bytes from the bad record to the end of the last segment when no
// good record of a later revision follows it. They are what an
// interrupted append left (a torn tail) when there are:
//
//   - fewer bytes than a header, a header all zero, or zeros from inside
//     the header to the end: the record was not, or not wholly, written;
//   - a length that runs past the end of the file: the write was cut
//     short, unless clearing one bit of the length gives a record that
//     lies in the file and whose checksum matches: then it is a whole
//     record with a flipped length bit;
//
// and damage when there is:
//
//   - a length over the record limit, within the file, since the log
//     writes no such record (a whole one, with a good checksum, was
//     written with a larger limit than the reader's, which the error
//     says);
//   - a whole record whose checksum fails, unless it ends in zeros that
//     run to the end of the file, some bytes in their place would make
//     the checksum match (a crash that zeroed them would have left the
//     same bytes) and no flipped bit of its length explains it (as above,
//     for a length that set a bit and now reaches into zeros after the
//     record);
//   - a whole record with a good checksum: its type is wrong, and the
//     checksum says it is what was written.
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
// Borrowed, and where it differs: etcd's WAL decoder (server/storage/wal
// decoder.go) also takes a length that runs past the end of the file for
// a torn write, and a checksum mismatch for one only if zeros can explain
// it (isTornEntry: some 512-byte sector of the record is all zero). Here
// the zeros must run to the end of the file, and must be able to hide the
// checksum; and a length past the end is checked for a single flipped bit,
// which etcd does not. pebble's record reader (record/record.go) takes a
// chunk header that is all zero for space never written (ErrZeroedChunk),
// as here, and reads ahead for a later good chunk to tell corruption from
// an unclean end, as restDamage does with laterRecordAt.

// zerosCanHideSums reports whether some k bytes in place of the k zero
// bytes that end a message of msgLen bytes would give it the checksum
// want, given the message's checksum, sum, and that of all but its last
// byte, butLast; with trailer, only bytes whose last is txTrailer count,
// as the last byte of every whole record of a segmentVersion segment is.
//
// A CRC is affine over GF(2): flipping bit j of the message's last k
// bytes changes the checksum by a fixed delta[j], whatever the other
// bytes hold. So the question is whether sum XOR want is a sum of some
// deltas, which Gaussian elimination on at most 32 vectors of 32 bits
// answers. Four free bytes always suffice (the CRC's register update is
// invertible, so any 32 consecutive bits can be chosen to give any
// checksum, whatever fixed bytes follow them), which is why only four are
// tried.
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
