package wal_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// readSnapshotFrom reads a snapshot stream one byte per Read, the least
// a reader may return, and collects what the callbacks were given.
func readSnapshotFrom(b []byte) (rev, announced int64, items []*wal.Item, err error) {
	announced = -1
	rev, err = wal.ReadSnapshotFrom(iotest.OneByteReader(bytes.NewReader(b)), 0, wal.Replay{
		Snapshot: func(r int64) error { announced = r; return nil },
		Item: func(it *wal.Item) error {
			c := *it
			items = append(items, &c)
			return nil
		},
	})
	return rev, announced, items, err
}

// TestReadSnapshotFrom: the streamed reader reads what WriteSnapshot wrote,
// whatever the sizes of the reads, announces the revision before the
// items, and treats any cut as corruption.
func TestReadSnapshotFrom(t *testing.T) {
	for _, n := range []int{0, 1, 300} {
		items := sampleItems(n)
		b := snapshotBytes(t, 9000, items)
		rev, announced, got, err := readSnapshotFrom(b)
		require.NoError(t, err)
		require.Equal(t, int64(9000), rev)
		require.Equal(t, int64(9000), announced)
		require.Equal(t, len(items), len(got))
		for i := range items {
			require.Equal(t, *items[i], *got[i])
		}
	}
	b := snapshotBytes(t, 50, sampleItems(3))
	for cut := 0; cut < len(b); cut++ {
		_, _, _, err := readSnapshotFrom(b[:cut])
		require.ErrorIs(t, err, wal.ErrCorrupt, "cut at %d", cut)
	}
	_, _, _, err := readSnapshotFrom(append(bytes.Clone(b), 1))
	require.ErrorIs(t, err, wal.ErrCorrupt)
}

// TestReadSnapshotFrom_Empty: revision 0 is the empty state, a stream the
// reader accepts but a snapshot file may not hold.
func TestReadSnapshotFrom_Empty(t *testing.T) {
	var buf bytes.Buffer
	n, err := wal.WriteSnapshot(&buf, 0, func(func(*wal.Item) bool) {})
	require.NoError(t, err)
	require.Zero(t, n)
	rev, announced, items, err := readSnapshotFrom(buf.Bytes())
	require.NoError(t, err)
	require.Zero(t, rev)
	require.Zero(t, announced)
	require.Empty(t, items)
	_, _, err = readSnapshot(buf.Bytes())
	require.ErrorIs(t, err, wal.ErrCorrupt)
	_, err = wal.WriteSnapshot(&buf, -1, func(func(*wal.Item) bool) {})
	require.Error(t, err)
}

// TestReadSnapshotFrom_Errors: a failing reader's error and a callback's
// error come back as they are, not as corruption.
func TestReadSnapshotFrom_Errors(t *testing.T) {
	b := snapshotBytes(t, 50, sampleItems(3))
	boom := errors.New("boom")
	_, err := wal.ReadSnapshotFrom(io.MultiReader(bytes.NewReader(b[:30]), iotest.ErrReader(boom)), 0, wal.Replay{})
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, wal.ErrCorrupt)

	stop := errors.New("stop")
	calls := 0
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(b), 0, wal.Replay{Item: func(*wal.Item) error {
		calls++
		return stop
	}})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(b), 0, wal.Replay{Snapshot: func(int64) error { return stop }})
	require.ErrorIs(t, err, stop)

	// A whole record longer than the limit was written with a larger
	// one: refused, and not as damage (TestSnapshot_RecordOverLimit).
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(b), 8, wal.Replay{})
	var over *wal.RecordOverLimitError
	require.ErrorAs(t, err, &over)
	require.NotErrorIs(t, err, wal.ErrCorrupt)
}

// FuzzReadSnapshotFrom: whatever the bytes, the reader gives the same
// revision, items and error however they come in reads (at once, a byte
// at a time, half of what is asked each time), and what it accepts
// writes back the same.
func FuzzReadSnapshotFrom(f *testing.F) {
	f.Add(snapshotBytes(f, 7, sampleItems(0)))
	f.Add(snapshotBytes(f, 0, sampleItems(0)))
	f.Add(snapshotBytes(f, 50, sampleItems(3)))
	b := snapshotBytes(f, 50, sampleItems(2))
	f.Add(b[:len(b)-1])
	f.Add(append(bytes.Clone(b), 0))
	// Records that straddle the reader's buffer, and one larger than it.
	big := snapshotBytes(f, 9000, append(sampleItems(3000), &wal.Item{Key: "z", Value: strings.Repeat("v", 100<<10), Revision: 8000, CreateRevision: 1, Version: 1}))
	f.Add(big)
	f.Add(big[:len(big)-50])
	type read struct {
		rev   int64
		items []*wal.Item
		err   string
	}
	readFrom := func(t *testing.T, r io.Reader) (got read) {
		rev, err := wal.ReadSnapshotFrom(r, 0, wal.Replay{Item: func(it *wal.Item) error {
			c := *it
			got.items = append(got.items, &c)
			return nil
		}})
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return read{err: err.Error()}
		}
		got.rev = rev
		return got
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := readFrom(t, bytes.NewReader(b))
		require.Equal(t, got, readFrom(t, iotest.OneByteReader(bytes.NewReader(b))), "a byte at a time")
		require.Equal(t, got, readFrom(t, iotest.HalfReader(bytes.NewReader(b))), "half at a time")
		if got.err != "" {
			return
		}
		rev2, items2, err := readSnapshot(snapshotBytes(t, got.rev, got.items))
		if got.rev == 0 { // the empty state, which a snapshot file cannot hold
			require.Empty(t, got.items)
			return
		}
		require.NoError(t, err)
		require.Equal(t, got.rev, rev2)
		require.Equal(t, got.items, items2)
	})
}

// TestTxRecord: records appended one after another decode back in turn,
// and every cut or flipped bit is ErrCorrupt.
func TestTxRecord(t *testing.T) {
	txs := []*wal.Tx{
		{Revision: 1, Time: 5, Writes: []wal.Write{{Kind: wal.KindPut, Key: "a", Value: "1", Created: true}}},
		{Revision: 2, Time: -7, Writes: []wal.Write{{Kind: wal.KindDelete, Key: "a"}, {Kind: wal.KindIncrement, Key: "n", Value: "3", Expires: 99}}},
	}
	var b []byte
	for _, tx := range txs {
		b = wal.AppendTxRecord(b, tx)
	}
	rest := b
	for _, want := range txs {
		got, n, err := wal.DecodeTxRecord(rest)
		require.NoError(t, err)
		require.Equal(t, want, got)
		rest = rest[n:]
	}
	require.Empty(t, rest)
	one := wal.AppendTxRecord(nil, txs[1])
	for cut := 0; cut < len(one); cut++ {
		_, _, err := wal.DecodeTxRecord(one[:cut])
		require.ErrorIs(t, err, wal.ErrCorrupt, "cut at %d", cut)
	}
	for i := range one {
		c := bytes.Clone(one)
		c[i] ^= 0x10
		_, _, err := wal.DecodeTxRecord(c)
		require.ErrorIs(t, err, wal.ErrCorrupt, "flip at %d", i)
	}
}

// FuzzDecodeTxRecord: whatever the bytes, DecodeTxRecord returns a
// transaction whose record reads back the same, or ErrCorrupt.
func FuzzDecodeTxRecord(f *testing.F) {
	f.Add(wal.AppendTxRecord(nil, &wal.Tx{Revision: 3, Time: 1, Writes: []wal.Write{{Kind: wal.KindPatch, Key: "k", Value: "{}"}}}))
	f.Add(wal.AppendTxRecord(wal.AppendTxRecord(nil, &wal.Tx{Revision: 1}), &wal.Tx{Revision: 2, Writes: []wal.Write{{Kind: wal.KindExpire, Key: "x"}}}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, n, err := wal.DecodeTxRecord(b)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return
		}
		require.LessOrEqual(t, n, len(b))
		again, m, err := wal.DecodeTxRecord(wal.AppendTxRecord(nil, tx))
		require.NoError(t, err)
		require.Equal(t, tx, again)
		require.Positive(t, m)
	})
}
