package wal_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

func sampleTx(rev int64) *wal.Tx {
	return &wal.Tx{Revision: rev, Time: 1700000000000000000 + rev, Writes: []wal.Write{
		{Kind: wal.KindPut, Key: fmt.Sprintf("user:%d", rev), Value: `{"name":"Ada"}`, Expires: 0, Created: true},
		{Kind: wal.KindIncrement, Key: "counter", Value: fmt.Sprint(rev), Expires: 1800000000000000000},
		{Kind: wal.KindDelete, Key: "gone"},
	}}
}

// versions are the segment formats the log reads: the first, whose
// transaction payloads have no trailer, and the one it writes.
var versions = []byte{wal.SegmentVersionNoTrailer, wal.SegmentVersion}

// appendTx appends tx's payload in a segment of the given version: the
// first format is the current one without its trailer byte.
func appendTx(dst []byte, tx *wal.Tx, version byte) []byte {
	dst = wal.AppendTx(dst, tx)
	if version == wal.SegmentVersionNoTrailer {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// segmentHeader builds a segment header of any version by hand, as an
// older (or newer) build wrote it.
func segmentHeader(version byte, first int64) []byte {
	h := append([]byte("LIVEKVW"), version)
	h = binary.LittleEndian.AppendUint64(h, uint64(first))
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, crc32.MakeTable(crc32.Castagnoli)))
}

// segment returns a segment body of n transaction records and each
// record's end offset.
func segment(n int) ([]byte, []int) { return segmentV(n, wal.SegmentVersion) }

// segmentV is segment in a segment of the given version.
func segmentV(n int, version byte) ([]byte, []int) {
	var b []byte
	var ends []int
	for i := 1; i <= n; i++ {
		b = wal.AppendRecord(b, wal.TypeTx, appendTx(nil, sampleTx(int64(i)), version))
		ends = append(ends, len(b))
	}
	return b, ends
}

func scanAll(b []byte) ([]wal.Tx, wal.ScanResult, error) { return scanAllV(b, wal.SegmentVersion) }

// scanAllV is scanAll in a segment of the given version.
func scanAllV(b []byte, version byte) ([]wal.Tx, wal.ScanResult, error) {
	var txs []wal.Tx
	r, err := wal.Scan(b, wal.SegmentHeaderSize, version, wal.DefaultMaxRecord, 0, func(typ byte, p []byte) error {
		tx, err := wal.DecodeTx(p, version)
		if err != nil {
			return err
		}
		txs = append(txs, tx)
		return nil
	})
	return txs, r, err
}

func TestTx_RoundTrip(t *testing.T) {
	tx := sampleTx(42)
	for _, v := range versions {
		got, err := wal.DecodeTx(appendTx(nil, tx, v), v)
		require.NoError(t, err, "version %d", v)
		require.Equal(t, *tx, got, "version %d", v)
	}
}

// TestTx_Trailer: every payload the log writes ends in the trailer byte,
// never in zero, whatever its last write; a payload is read only in the
// version it was written in.
func TestTx_Trailer(t *testing.T) {
	for _, w := range []wal.Write{
		{Kind: wal.KindPut, Key: "k", Value: "v"},
		{Kind: wal.KindDelete, Key: "k"},
		{Kind: wal.KindPut, Key: "k", Value: "v\x00\x00\x00\x00"},
	} {
		tx := &wal.Tx{Revision: 1, Writes: []wal.Write{w}}
		b := wal.AppendTx(nil, tx)
		require.Equal(t, byte(0xff), b[len(b)-1])
		require.Zero(t, appendTx(nil, tx, wal.SegmentVersionNoTrailer)[len(b)-2])
		_, err := wal.DecodeTx(b[:len(b)-1], wal.SegmentVersion)
		require.ErrorIs(t, err, wal.ErrCorrupt, "no trailer")
		_, err = wal.DecodeTx(b, wal.SegmentVersionNoTrailer)
		require.ErrorIs(t, err, wal.ErrCorrupt, "a trailer in the first format")
		for c := range 255 { // every other last byte
			b[len(b)-1] = byte(c)
			_, err := wal.DecodeTx(b, wal.SegmentVersion)
			require.ErrorIs(t, err, wal.ErrCorrupt, "trailer %#x", c)
		}
	}
	b := wal.AppendTx(nil, sampleTx(1))
	for _, v := range []byte{0, 3, 0xff} {
		_, err := wal.DecodeTx(b, v)
		require.ErrorIs(t, err, wal.ErrCorrupt, "version %d", v)
	}
}

func TestDecodeTx_Damage(t *testing.T) {
	for _, v := range versions {
		good := appendTx(nil, sampleTx(3), v)
		for i := 0; i < len(good); i++ {
			_, err := wal.DecodeTx(good[:i], v)
			require.ErrorIs(t, err, wal.ErrCorrupt, "version %d: cut at %d", v, i)
		}
		_, err := wal.DecodeTx(append(good, 0), v)
		require.ErrorIs(t, err, wal.ErrCorrupt, "version %d: trailing byte", v)
		// A huge count or length is an error, not an allocation.
		_, err = wal.DecodeTx([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff}, v)
		require.ErrorIs(t, err, wal.ErrCorrupt)
		_, err = wal.DecodeTx([]byte{1, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff}, v)
		require.ErrorIs(t, err, wal.ErrCorrupt)
		_, err = wal.DecodeTx(appendTx(nil, &wal.Tx{Revision: 1, Writes: []wal.Write{{Kind: 9, Key: "k"}}}, v), v)
		require.ErrorIs(t, err, wal.ErrCorrupt, "unknown kind")
		_, err = wal.DecodeTx(appendTx(nil, &wal.Tx{Revision: 0}, v), v)
		require.ErrorIs(t, err, wal.ErrCorrupt, "revision 0")
	}
}

func TestSegmentHeader(t *testing.T) {
	h := wal.AppendSegmentHeader(nil, 77)
	require.Len(t, h, wal.SegmentHeaderSize)
	require.Equal(t, segmentHeader(wal.SegmentVersion, 77), h)
	first, version, err := wal.DecodeSegmentHeader(h)
	require.NoError(t, err)
	require.Equal(t, int64(77), first)
	require.Equal(t, byte(wal.SegmentVersion), version)
	for bit := 0; bit < len(h)*8; bit++ {
		b := append([]byte(nil), h...)
		b[bit/8] ^= 1 << (bit % 8)
		_, _, err := wal.DecodeSegmentHeader(b)
		require.ErrorIs(t, err, wal.ErrCorrupt, "bit %d", bit)
	}
	_, _, err = wal.DecodeSegmentHeader(h[:19])
	require.ErrorIs(t, err, wal.ErrCorrupt)

	// The first format is still read; versions before or after are not.
	first, version, err = wal.DecodeSegmentHeader(segmentHeader(wal.SegmentVersionNoTrailer, 77))
	require.NoError(t, err)
	require.Equal(t, int64(77), first)
	require.Equal(t, byte(wal.SegmentVersionNoTrailer), version)
	for _, v := range []byte{0, wal.SegmentVersion + 1, 0xff} {
		_, _, err := wal.DecodeSegmentHeader(segmentHeader(v, 77))
		require.ErrorIs(t, err, wal.ErrCorrupt, "version %d", v)
		require.ErrorContains(t, err, "version", "version %d", v)
	}
}

func TestScan_Clean(t *testing.T) {
	for _, v := range versions {
		b, _ := segmentV(5, v)
		txs, r, err := scanAllV(b, v)
		require.NoError(t, err)
		require.Len(t, txs, 5)
		require.Equal(t, wal.ScanResult{Records: 5, Good: int64(wal.SegmentHeaderSize + len(b))}, r)
		require.Equal(t, *sampleTx(5), txs[4])
	}
}

// TestScan_TornTail cuts the last record at every byte offset, zeroes the
// tail and fills it with garbage: always a torn tail at the last good
// record, never corruption.
func TestScan_TornTail(t *testing.T) {
	for _, v := range versions {
		b, ends := segmentV(4, v)
		lastStart := ends[2]
		for cut := lastStart; cut < len(b); cut++ {
			txs, r, err := scanAllV(b[:cut], v)
			require.NoError(t, err, "version %d: cut at %d", v, cut)
			require.Len(t, txs, 3)
			require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good)
			require.Equal(t, cut != lastStart, r.Torn, "version %d: cut at %d", v, cut)
		}
		for _, fill := range []byte{0x00, 0xff, 0xa5} {
			tail := append(append([]byte(nil), b[:lastStart]...), make([]byte, 4096)...)
			for i := lastStart; i < len(tail); i++ {
				tail[i] = fill
			}
			txs, r, err := scanAllV(tail, v)
			require.NoError(t, err, "version %d: fill %#x", v, fill)
			require.Len(t, txs, 3)
			require.True(t, r.Torn)
			require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good)
		}
	}
}

// TestScan_BitFlips flips every bit of a record that has good records
// after it: always detected as corruption, never skipped.
func TestScan_BitFlips(t *testing.T) {
	for _, v := range versions {
		b, ends := segmentV(3, v)
		for bit := ends[0] * 8; bit < ends[1]*8; bit++ {
			c := append([]byte(nil), b...)
			c[bit/8] ^= 1 << (bit % 8)
			txs, _, err := scanAllV(c, v)
			require.ErrorIs(t, err, wal.ErrCorrupt, "version %d: bit %d", v, bit)
			require.Len(t, txs, 1, "version %d: bit %d: only the record before the damage is read", v, bit)
			require.Contains(t, err.Error(), fmt.Sprintf("offset %d", wal.SegmentHeaderSize+ends[0]))
		}
	}
}

func TestScan_CallbackError(t *testing.T) {
	b, ends := segment(3)
	stop := errors.New("stop")
	n := 0
	r, err := wal.Scan(b, 0, wal.SegmentVersion, wal.DefaultMaxRecord, 0, func(byte, []byte) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, int64(ends[0]), r.Good)
}

func TestDecodeRecord_LengthNeverAllocated(t *testing.T) {
	rec := wal.AppendRecord(nil, wal.TypeTx, []byte("x"))
	rec[0], rec[1], rec[2], rec[3] = 0xff, 0xff, 0xff, 0x7f
	_, _, _, err := wal.DecodeRecord(rec, wal.DefaultMaxRecord)
	require.Error(t, err)
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := segment(2)
	f.Add(b)
	f.Add([]byte{})
	f.Add(make([]byte, 9))
	f.Add(wal.AppendRecord(nil, 7, []byte("other type")))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, n, err := wal.DecodeRecord(b, 1<<16)
		if err != nil {
			return
		}
		require.Equal(t, wal.TypeTx, typ)
		require.Equal(t, b[:n], wal.AppendRecord(nil, typ, payload), "a decoded record re-encodes to its bytes")
	})
}

func FuzzSegmentHeader(f *testing.F) {
	f.Add(wal.AppendSegmentHeader(nil, 1))
	f.Add(wal.AppendSegmentHeader(nil, 1<<40))
	f.Add(segmentHeader(wal.SegmentVersionNoTrailer, 1))
	f.Add(segmentHeader(wal.SegmentVersion+1, 1))
	f.Add([]byte("LIVEKVW"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first, version, err := wal.DecodeSegmentHeader(b)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return
		}
		require.Contains(t, versions, version)
		require.Equal(t, b[:wal.SegmentHeaderSize], segmentHeader(version, first))
		if version == wal.SegmentVersion {
			require.Equal(t, b[:wal.SegmentHeaderSize], wal.AppendSegmentHeader(nil, first))
		}
	})
}

// FuzzDecodeTx decodes b in each version: what decodes re-encodes to the
// same transaction, and b decodes in the current version exactly when b
// without its last byte, the trailer, decodes in the first, to the same.
func FuzzDecodeTx(f *testing.F) {
	for _, v := range versions {
		f.Add(appendTx(nil, sampleTx(1), v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 1}, v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 2, Writes: []wal.Write{{Kind: wal.KindPut, Key: "k", Value: "v\x00\x00"}}}, v))
	}
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var txs [2]wal.Tx
		var errs [2]error
		for i, v := range versions {
			tx, err := wal.DecodeTx(b, v)
			txs[i], errs[i] = tx, err
			if err != nil {
				require.ErrorIs(t, err, wal.ErrCorrupt)
				continue
			}
			again, err := wal.DecodeTx(appendTx(nil, &tx, v), v)
			require.NoError(t, err)
			require.Equal(t, tx, again)
		}
		if errs[1] == nil {
			tx, err := wal.DecodeTx(b[:len(b)-1], wal.SegmentVersionNoTrailer)
			require.NoError(t, err)
			require.Equal(t, txs[1], tx)
		}
		if errs[0] == nil {
			tx, err := wal.DecodeTx(append(b[:len(b):len(b)], 0xff), wal.SegmentVersion)
			require.NoError(t, err)
			require.Equal(t, txs[0], tx)
		}
	})
}

// FuzzCheckTx: checkTx, which checks a transaction without keeping it,
// fails exactly when decodeTx does, with the same error, and otherwise
// gives its revision and number of writes.
func FuzzCheckTx(f *testing.F) {
	for _, v := range versions {
		f.Add(appendTx(nil, sampleTx(1), v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 1}, v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 2, Writes: []wal.Write{{Kind: wal.KindPut, Key: "k", Value: "v\x00\x00"}}}, v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 3, Writes: []wal.Write{{Kind: wal.KindDelete, Key: "k"}, {Kind: 9, Key: "j"}}}, v))
		f.Add(appendTx(nil, &wal.Tx{Revision: 4, Writes: []wal.Write{{Kind: wal.KindPut, Value: "v"}}}, v))
	}
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range versions {
			tx, err := wal.DecodeTx(b, v)
			rev, writes, cerr := wal.CheckTx(b, v)
			// Borrowed into a Tx that held a record before, of one write
			// and of three, as a replay uses one again.
			for _, before := range []wal.Tx{{Revision: 9, Writes: []wal.Write{{Kind: wal.KindPut, Key: "old", Value: "old"}}}, *sampleTx(9)} {
				borrowed := before
				borrowed.Writes = slices.Clone(before.Writes)
				berr := wal.BorrowTx(b, v, &borrowed)
				if err != nil {
					require.Error(t, berr)
					require.Equal(t, err.Error(), berr.Error())
					continue
				}
				require.NoError(t, berr)
				require.Equal(t, tx.Revision, borrowed.Revision)
				require.Equal(t, tx.Time, borrowed.Time)
				require.Equal(t, len(tx.Writes), len(borrowed.Writes))
				for i, w := range borrowed.Writes {
					require.Equal(t, tx.Writes[i], w)
					requireBorrowed(t, w.Key, b, "key")
					requireBorrowed(t, w.Value, b, "value")
				}
			}
			if err != nil {
				require.Error(t, cerr)
				require.Equal(t, err.Error(), cerr.Error())
				continue
			}
			require.NoError(t, cerr)
			require.Equal(t, tx.Revision, rev)
			require.Equal(t, len(tx.Writes), writes)
		}
	})
}

// addSegmentBodies seeds f with segment bodies of each format: whole,
// cut short, and with bytes cut out of a record.
func addSegmentBodies(f *testing.F) {
	for _, v := range versions {
		b, _ := segmentV(3, v)
		f.Add(b)
		f.Add(b[:len(b)-3])
		f.Add(append(b[:20:20], b[30:]...))
	}
}

// FuzzScan: whatever the bytes, Scan either reads records, reports a torn
// tail, or reports corruption; it never panics, and a torn tail ends where
// the good records end.
func FuzzScan(f *testing.F) {
	addSegmentBodies(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range versions {
			n := 0
			r, err := wal.Scan(b, 0, v, 1<<16, 0, func(byte, []byte) error { n++; return nil })
			if err != nil {
				require.ErrorIs(t, err, wal.ErrCorrupt)
			}
			require.Equal(t, n, r.Records)
			require.LessOrEqual(t, r.Good, int64(len(b)))
		}
	})
}

// FuzzScanFile: whatever the bytes, scanFile, which reads a segment in
// pieces, agrees with scan over the same bytes whole: the same records, in
// order, the same result (records, where the good ones end, a torn tail
// or not) and the same error, from any offset, whether fn takes every
// record or stops the scan at one.
func FuzzScanFile(f *testing.F) {
	addSegmentBodies(f)
	for _, v := range versions {
		b, _ := segmentV(3, v)
		f.Add(append(b, make([]byte, 40)...)) // a zeroed tail
	}
	// Records that straddle the reader's buffer, and one larger than it,
	// whole and cut short.
	var many []byte
	for i := range 2000 {
		many = wal.AppendRecord(many, wal.TypeTx, appendTx(nil, sampleTx(int64(i+1)), wal.SegmentVersion))
	}
	huge := &wal.Tx{Revision: 2001, Writes: []wal.Write{{Kind: wal.KindPut, Key: "k", Value: strings.Repeat("v", 100<<10)}}}
	many = wal.AppendRecord(many, wal.TypeTx, appendTx(nil, huge, wal.SegmentVersion))
	f.Add(many)
	f.Add(many[:len(many)-10])
	f.Add(append(slices.Clone(many[:70000]), many[70100:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 18
		type got struct {
			payloads [][]byte
			res      wal.ScanResult
			err      string
		}
		run := func(whole bool, base int64, v byte, stopAt int) got {
			var g got
			fn := func(p []byte) error {
				if len(g.payloads) == stopAt {
					return errStop
				}
				g.payloads = append(g.payloads, slices.Clone(p))
				return nil
			}
			var err error
			if whole {
				g.res, err = wal.Scan(b[base:], base, v, max, 0, func(_ byte, p []byte) error { return fn(p) })
			} else {
				g.res, err = wal.ScanFile(b, base, v, max, nil, fn)
			}
			if err != nil {
				g.err = err.Error()
			}
			return g
		}
		for _, v := range versions {
			for _, base := range []int64{0, int64(len(b) / 3)} {
				for _, stopAt := range []int{-1, len(b) % 5} {
					want := run(true, base, v, stopAt)
					require.Equal(t, want, run(false, base, v, stopAt), "version %d, from %d, stop at %d", v, base, stopAt)
				}
			}
		}
	})
}

var errStop = errors.New("stop")

// TestScanFile_ReadError: a read of the file that fails, in the records
// or in the rest read after a bad one, stops scanFile with that error,
// not one of damage.
func TestScanFile_ReadError(t *testing.T) {
	b, ends := segmentV(50, wal.SegmentVersion)
	bad := slices.Clone(b)
	bad[ends[20]+10] ^= 1 // record 22 fails its checksum; the rest is read whole
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		b       []byte
		failAt  int64
		records int // given to fn before the error
	}{
		// The 11 records before it, then the failed read.
		{"in the records", b, int64(ends[10] + 3), 11},
		// The first read stops at ends[30], after the bad record: the 21
		// records before it, then the read of the rest fails.
		{"in the rest after a bad record", bad, int64(ends[30]), 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			_, err := wal.ScanFile(tc.b, 0, wal.SegmentVersion, wal.DefaultMaxRecord, func(r vfs.Reader) vfs.Reader {
				return failingReader{r, tc.failAt, boom}
			}, func([]byte) error { n++; return nil })
			require.ErrorIs(t, err, boom)
			require.NotErrorIs(t, err, wal.ErrCorrupt)
			require.Equal(t, tc.records, n)
		})
	}
}

// failingReader reads what is before offset at, and fails there: a read
// that reaches it gets the bytes before it and err.
type failingReader struct {
	vfs.Reader
	at  int64
	err error
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= r.at {
		return r.Reader.ReadAt(p, off)
	}
	if off >= r.at {
		return 0, r.err
	}
	n, err := r.Reader.ReadAt(p[:r.at-off], off)
	if err == nil {
		err = r.err
	}
	return n, err
}

// requireBorrowed checks that s, decoded from b without a copy
// (Replay.Borrow), points into b, or, if empty, at nothing: an empty
// string into b would keep all of b for whoever keeps it.
func requireBorrowed(t *testing.T, s string, b []byte, what string) {
	t.Helper()
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	if len(s) == 0 {
		require.Zero(t, p, "an empty %s that points into the record", what)
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	require.True(t, p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(b)), "a borrowed %s outside the record", what)
}

// FuzzCheckSegment: whatever the bytes, checkSegment, which reads a
// segment of history alone in pieces, never panics, and agrees with scan
// over the whole file: the same records at the same offsets, then no
// error if scan found the segment whole, or else ErrCorrupt (a torn tail
// is damage in a segment with later ones after it).
func FuzzCheckSegment(f *testing.F) {
	body, _ := segmentV(3, wal.SegmentVersion)
	b := append(wal.AppendSegmentHeader(nil, 1), body...)
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add(append(b[:30:30], b[40:]...))
	f.Add(b[:wal.SegmentHeaderSize])
	f.Add(b[:7])
	// Records that straddle the reader's buffer, and one larger than it.
	var many []byte
	for i := range 2000 {
		many = wal.AppendRecord(many, wal.TypeTx, appendTx(nil, sampleTx(int64(i+1)), wal.SegmentVersion))
	}
	huge := &wal.Tx{Revision: 2001, Writes: []wal.Write{{Kind: wal.KindPut, Key: "k", Value: strings.Repeat("v", 100<<10)}}}
	many = wal.AppendRecord(many, wal.TypeTx, appendTx(nil, huge, wal.SegmentVersion))
	many = append(wal.AppendSegmentHeader(nil, 1), many...)
	f.Add(many)
	f.Add(many[:len(many)-10])
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 18
		offs, payloads, size, version, err := wal.CheckSegment(b, max)
		require.Equal(t, int64(len(b)), size)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
		}
		_, hversion, herr := wal.DecodeSegmentHeader(b)
		if herr != nil {
			require.Error(t, err)
			require.Empty(t, offs)
			return
		}
		require.Equal(t, hversion, version)
		var wantOffs []int64
		var want [][]byte
		off := int64(wal.SegmentHeaderSize)
		r, serr := wal.Scan(b[wal.SegmentHeaderSize:], wal.SegmentHeaderSize, hversion, max, 0, func(_ byte, p []byte) error {
			wantOffs, want = append(wantOffs, off), append(want, slices.Clone(p))
			off += int64(wal.RecordHeaderSize + len(p))
			return nil
		})
		require.Equal(t, wantOffs, offs)
		require.Equal(t, want, payloads)
		if serr == nil && !r.Torn && r.Good == int64(len(b)) {
			require.NoError(t, err)
		} else {
			require.Error(t, err, "scan: %v, torn %v, good to %d of %d", serr, r.Torn, r.Good, len(b))
		}
	})
}

// TestOpen_NegativeSyncInterval: a negative interval would never fsync,
// where a bound on what a crash loses was asked for: Open refuses it.
func TestOpen_NegativeSyncInterval(t *testing.T) {
	_, err := wal.Open(t.TempDir(), &wal.Options{Sync: wal.SyncInterval(-time.Second)}, wal.Replay{})
	require.ErrorContains(t, err, "negative")
	require.Equal(t, time.Second, wal.SyncInterval(time.Second).Interval())
}
