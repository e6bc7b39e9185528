package wal

import (
	"encoding/binary"
	"testing"
)

// FuzzDecoderVarint: the decoder's varints, with their fast paths for
// one to three bytes, read what encoding/binary reads from any bytes,
// overlong and cut-short encodings included, take as many bytes, and fail
// where it fails; after a failure, every read finds nothing.
func FuzzDecoderVarint(f *testing.F) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 16383, 16384, 2_000_000, 1 << 35, 1<<64 - 1} {
		f.Add(binary.AppendUvarint(nil, v))
	}
	f.Add([]byte{0x80, 0x00})                                                 // overlong zero
	f.Add([]byte{0xff, 0xff, 0x00})                                           // overlong, three bytes
	f.Add([]byte{0x80})                                                       // cut short
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}) // overflow
	f.Fuzz(func(t *testing.T, b []byte) {
		u := decoder{b: b}
		got := u.uvarint()
		want, n := binary.Uvarint(b)
		if n <= 0 {
			if u.err == nil || got != 0 || len(u.b) != 0 {
				t.Fatalf("uvarint of %x: %d, err %v, %d bytes left; encoding/binary fails", b, got, u.err, len(u.b))
			}
			if again := u.uvarint(); again != 0 {
				t.Fatalf("uvarint after a failure: %d", again)
			}
		} else if u.err != nil || got != want || len(u.b) != len(b)-n {
			t.Fatalf("uvarint of %x: %d, err %v, %d bytes left; want %d, %d left", b, got, u.err, len(u.b), want, len(b)-n)
		}
		s := decoder{b: b}
		sgot := s.varint()
		swant, sn := binary.Varint(b)
		if sn <= 0 {
			if s.err == nil || sgot != 0 {
				t.Fatalf("varint of %x: %d, err %v; encoding/binary fails", b, sgot, s.err)
			}
		} else if s.err != nil || sgot != swant || len(s.b) != len(b)-sn {
			t.Fatalf("varint of %x: %d, err %v, %d bytes left; want %d, %d left", b, sgot, s.err, len(s.b), swant, len(b)-sn)
		}
	})
}
