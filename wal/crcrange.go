package wal

import (
	"encoding/binary"
	"hash/crc32"
)

// Checksums of any section of a buffer from its prefixes' checksums, so
// that findRecord can test a record at every offset of a damaged span in
// time linear in the span, where checksumming each candidate's bytes
// again took time quadratic in it: a torn write of a large value leaves
// bytes that, read as headers at each offset, claim lengths up to the
// record limit.
//
// For CRC-32 as hash/crc32 computes it (the register preset to all ones
// and inverted at the end), the checksum of a concatenation is
// crc(AB) = x^(8|B|)·crc(A) ⊕ crc(B) in GF(2)[x] modulo the polynomial
// (zlib's crc32_combine), so crc(B) = crc(AB) ⊕ x^(8|B|)·crc(A): the
// checksum of b[s:e] comes from those of b[:s] and b[:e].

// castagnoliPoly is the Castagnoli polynomial, bit-reversed as the
// table-driven code uses it.
const castagnoliPoly = 0x82f63b78

// x2n holds x^(2^k) modulo the polynomial, for k from 0 to 31.
var x2n = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1, bit-reversed
	for k := range t {
		t[k] = p
		p = mulModP(p, p)
	}
	return t
}()

// mulModP multiplies a and b modulo the polynomial (bit-reversed: x^0 is
// the top bit).
func mulModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// shiftBytes returns x^(8n)·c modulo the polynomial: the register c
// carried through n zero bytes, without the preset and the inversion.
func shiftBytes(c uint32, n int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = mulModP(x2n[k&31], p)
		}
	}
	return mulModP(p, c)
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
