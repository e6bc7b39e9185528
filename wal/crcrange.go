package wal

// Checksums of any section of a span from the checksums of its
// prefixes, so that laterRecordAt can test a record at every offset of a
// damaged span in time linear in the span (firstLater), where checksumming each candidate's bytes
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
