package wal

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
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

// TestReadTx_DamagedCountAllocatesLittle: a record whose write count is
// as large as its bytes allow, with damage in its first write, is refused
// having allocated little more than its own size, whether it comes from
// a peer (DecodeTxRecord) or from a segment at Open; and a count over
// what the bytes can hold is refused as such.
func TestReadTx_DamagedCountAllocatesLittle(t *testing.T) {
	payload := func(size int, n uint64) []byte {
		p := binary.AppendUvarint(nil, 1) // revision
		p = binary.AppendVarint(p, 0)     // time
		p = binary.AppendUvarint(p, n)
		p = append(p, make([]byte, size)...) // zeros: the first write's kind, 0, is damage
		return append(p, txTrailer)
	}
	allocated := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	const size = 2 << 20
	rec := appendRecord(nil, typeTx, payload(size, size/minWriteSize))
	var err error
	got := allocated(func() { _, _, err = DecodeTxRecord(rec) })
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "write kind 0")
	require.Less(t, got, uint64(len(rec)), "bytes allocated to decode a damaged record of %d", len(rec))

	dir := t.TempDir()
	l, err := Open(dir, nil, Replay{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	seg := append(appendSegmentHeader(nil, 1), rec...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal", segmentName(1)), seg, 0o644))
	got = allocated(func() {
		l, err = Open(dir, nil, Replay{Tx: func(*Tx) error { return nil }})
	})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Less(t, got, 8*uint64(len(seg)), "bytes allocated to open a segment of %d (its reading buffers included)", len(seg))

	_, _, err = DecodeTxRecord(appendRecord(nil, typeTx, payload(100, 100/minWriteSize+1)))
	require.ErrorContains(t, err, "write count 21 over the payload")
}
