package wal_test

import (
	"errors"
	"fmt"
	"testing"

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

// segment returns a segment body of n transaction records and each
// record's end offset.
func segment(n int) ([]byte, []int) {
	var b []byte
	var ends []int
	for i := 1; i <= n; i++ {
		b = wal.AppendRecord(b, wal.TypeTx, wal.AppendTx(nil, sampleTx(int64(i))))
		ends = append(ends, len(b))
	}
	return b, ends
}

func scanAll(b []byte) ([]wal.Tx, wal.ScanResult, error) {
	var txs []wal.Tx
	r, err := wal.Scan(b, wal.SegmentHeaderSize, wal.DefaultMaxRecord, func(typ byte, p []byte) error {
		tx, err := wal.DecodeTx(p)
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
	got, err := wal.DecodeTx(wal.AppendTx(nil, tx))
	require.NoError(t, err)
	require.Equal(t, *tx, got)
}

func TestDecodeTx_Damage(t *testing.T) {
	good := wal.AppendTx(nil, sampleTx(3))
	for i := 0; i < len(good); i++ {
		_, err := wal.DecodeTx(good[:i])
		require.ErrorIs(t, err, wal.ErrCorrupt, "cut at %d", i)
	}
	_, err := wal.DecodeTx(append(good, 0))
	require.ErrorIs(t, err, wal.ErrCorrupt, "trailing byte")
	// A huge count or length is an error, not an allocation.
	_, err = wal.DecodeTx([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	require.ErrorIs(t, err, wal.ErrCorrupt)
	_, err = wal.DecodeTx([]byte{1, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	require.ErrorIs(t, err, wal.ErrCorrupt)
	_, err = wal.DecodeTx(wal.AppendTx(nil, &wal.Tx{Revision: 1, Writes: []wal.Write{{Kind: 9, Key: "k"}}}))
	require.ErrorIs(t, err, wal.ErrCorrupt, "unknown kind")
	_, err = wal.DecodeTx(wal.AppendTx(nil, &wal.Tx{Revision: 0}))
	require.ErrorIs(t, err, wal.ErrCorrupt, "revision 0")
}

func TestSegmentHeader(t *testing.T) {
	h := wal.AppendSegmentHeader(nil, 77)
	require.Len(t, h, wal.SegmentHeaderSize)
	first, err := wal.DecodeSegmentHeader(h)
	require.NoError(t, err)
	require.Equal(t, int64(77), first)
	for bit := 0; bit < len(h)*8; bit++ {
		b := append([]byte(nil), h...)
		b[bit/8] ^= 1 << (bit % 8)
		_, err := wal.DecodeSegmentHeader(b)
		require.ErrorIs(t, err, wal.ErrCorrupt, "bit %d", bit)
	}
	_, err = wal.DecodeSegmentHeader(h[:19])
	require.ErrorIs(t, err, wal.ErrCorrupt)
}

func TestScan_Clean(t *testing.T) {
	b, _ := segment(5)
	txs, r, err := scanAll(b)
	require.NoError(t, err)
	require.Len(t, txs, 5)
	require.Equal(t, wal.ScanResult{Records: 5, Good: int64(wal.SegmentHeaderSize + len(b))}, r)
	require.Equal(t, *sampleTx(5), txs[4])
}

// TestScan_TornTail cuts the last record at every byte offset, zeroes the
// tail and fills it with garbage: always a torn tail at the last good
// record, never corruption.
func TestScan_TornTail(t *testing.T) {
	b, ends := segment(4)
	lastStart := ends[2]
	for cut := lastStart; cut < len(b); cut++ {
		txs, r, err := scanAll(b[:cut])
		require.NoError(t, err, "cut at %d", cut)
		require.Len(t, txs, 3)
		require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good)
		require.Equal(t, cut != lastStart, r.Torn, "cut at %d", cut)
	}
	for _, fill := range []byte{0x00, 0xff, 0xa5} {
		tail := append(append([]byte(nil), b[:lastStart]...), make([]byte, 4096)...)
		for i := lastStart; i < len(tail); i++ {
			tail[i] = fill
		}
		txs, r, err := scanAll(tail)
		require.NoError(t, err, "fill %#x", fill)
		require.Len(t, txs, 3)
		require.True(t, r.Torn)
		require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good)
	}
}

// TestScan_BitFlips flips every bit of a record that has good records
// after it: always detected as corruption, never skipped.
func TestScan_BitFlips(t *testing.T) {
	b, ends := segment(3)
	for bit := ends[0] * 8; bit < ends[1]*8; bit++ {
		c := append([]byte(nil), b...)
		c[bit/8] ^= 1 << (bit % 8)
		txs, _, err := scanAll(c)
		require.ErrorIs(t, err, wal.ErrCorrupt, "bit %d", bit)
		require.Len(t, txs, 1, "bit %d: only the record before the damage is read", bit)
		require.Contains(t, err.Error(), fmt.Sprintf("offset %d", wal.SegmentHeaderSize+ends[0]))
	}
}

func TestScan_CallbackError(t *testing.T) {
	b, ends := segment(3)
	stop := errors.New("stop")
	n := 0
	r, err := wal.Scan(b, 0, wal.DefaultMaxRecord, func(byte, []byte) error {
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
	f.Add([]byte("LIVEKVW"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first, err := wal.DecodeSegmentHeader(b)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return
		}
		require.Equal(t, b[:wal.SegmentHeaderSize], wal.AppendSegmentHeader(nil, first))
	})
}

func FuzzDecodeTx(f *testing.F) {
	f.Add(wal.AppendTx(nil, sampleTx(1)))
	f.Add(wal.AppendTx(nil, &wal.Tx{Revision: 1}))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := wal.DecodeTx(b)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return
		}
		again, err := wal.DecodeTx(wal.AppendTx(nil, &tx))
		require.NoError(t, err)
		require.Equal(t, tx, again)
	})
}

// FuzzScan: whatever the bytes, Scan either reads records, reports a torn
// tail, or reports corruption; it never panics, and a torn tail ends where
// the good records end.
func FuzzScan(f *testing.F) {
	b, _ := segment(3)
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add(append(b[:20:20], b[30:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		r, err := wal.Scan(b, 0, 1<<16, func(byte, []byte) error { n++; return nil })
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
		}
		require.Equal(t, n, r.Records)
		require.LessOrEqual(t, r.Good, int64(len(b)))
	})
}
