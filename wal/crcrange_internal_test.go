package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// findRecordByChecksums is findRecord as it was: each candidate's bytes
// checksummed again, in time quadratic in b for some bytes. The tests
// hold the new one to it.
func findRecordByChecksums(b []byte, max int) int {
	for i := 0; i+recordHeaderSize <= len(b); i++ {
		if _, _, _, err := decodeRecord(b[i:], max); err == nil {
			return i
		}
	}
	return -1
}

// TestPrefixCRC_Section: the checksum of any section, from those of
// prefixes, is crc32's, for sections of every length around the marks'
// step and long ones.
func TestPrefixCRC_Section(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 1000, 70_000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		p := newPrefixCRC(b)
		for try := 0; try < 300; try++ {
			s := r.IntN(n + 1)
			e := s + r.IntN(n-s+1)
			require.Equal(t, crc32.Checksum(b[s:e], castagnoli), p.section(s, e), "n=%d b[%d:%d]", n, s, e)
		}
		require.Equal(t, crc32.Checksum(b, castagnoli), p.section(0, n))
	}
}

// TestFindRecord_AsBefore: on damaged spans holding records at random
// offsets (some of them cut short, some with a byte changed), and on
// random bytes, findRecord finds what checksumming each candidate found.
func TestFindRecord_AsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for try := 0; try < 2000; try++ {
		var b []byte
		for len(b) < 3000 {
			switch r.IntN(4) {
			case 0: // a record
				payload := make([]byte, r.IntN(200))
				for i := range payload {
					payload[i] = byte(r.Uint32())
				}
				rec := appendRecord(nil, typeTx, payload)
				switch r.IntN(4) {
				case 0:
					rec = rec[:r.IntN(len(rec)+1)]
				case 1:
					rec[r.IntN(len(rec))] ^= byte(1 + r.IntN(255))
				}
				b = append(b, rec...)
			case 1: // a header whose length points inside the span
				b = binary.LittleEndian.AppendUint32(b, uint32(r.IntN(3000)))
				b = binary.LittleEndian.AppendUint32(b, r.Uint32())
				b = append(b, typeTx)
			default: // noise
				for n := r.IntN(100); n > 0; n-- {
					b = append(b, byte(r.Uint32()))
				}
			}
		}
		max := 1 << 16
		if r.IntN(4) == 0 {
			max = r.IntN(300)
		}
		require.Equal(t, findRecordByChecksums(b, max), findRecord(b, max), "try %d", try)
	}
}

// FuzzFindRecord: whatever the bytes and the limit, findRecord finds what
// checksumming each candidate finds.
func FuzzFindRecord(f *testing.F) {
	f.Add(appendRecord([]byte{1, 2, 3}, typeTx, []byte("payload")), 1<<16)
	f.Add(appendRecord(nil, typeTx, nil), 0)
	f.Add(craftedSpan(600), 1<<20)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 {
			max = -(max + 1)
		}
		require.Equal(t, findRecordByChecksums(b, max), findRecord(b, max))
	})
}

// craftedSpan returns n bytes in which every fourth offset reads as the
// header of a record of type typeTx about n/4 bytes long, which the span
// holds unless the offset is in its last quarter; none is a valid record.
func craftedSpan(n int) []byte {
	l := n / 4
	pattern := []byte{typeTx, byte(l >> 8), byte(l >> 16), 0}
	b := make([]byte, n)
	for i := range b {
		b[i] = pattern[i%4]
	}
	return b
}

// findRecordInPieces is findRecord as recovery runs it: laterRecordAt,
// reading b through an io.ReaderAt, in batches of candidates.
func findRecordInPieces(b []byte, max int) int {
	at, err := laterRecordAt(bytes.NewReader(b), 0, int64(len(b)), max, -1)
	if err != nil {
		panic(err)
	}
	return int(at)
}

// BenchmarkFindRecord: a damaged span of 256 KiB with no record in it,
// where every offset claims a record that ends inside the span (crafted),
// or random bytes as a torn write of a binary value leaves them; by
// prefix checksums, held whole and read in pieces as recovery does, and,
// for comparison, by checksumming every candidate again.
func BenchmarkFindRecord(b *testing.B) {
	random := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, span := range []struct {
		name string
		b    []byte
	}{{"crafted", craftedSpan(256 << 10)}, {"random", random}} {
		for _, f := range []struct {
			name string
			find func([]byte, int) int
		}{{"prefix", findRecord}, {"each", findRecordByChecksums}, {"pieces", findRecordInPieces}} {
			b.Run(span.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(span.b)))
				for b.Loop() {
					if f.find(span.b, 64<<20) >= 0 {
						b.Fatal("found a record")
					}
				}
			})
		}
	}
}
