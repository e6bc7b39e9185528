package cluster

import (
	"testing"

	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

func testTxs(first int64, n int) []*wal.Tx {
	var txs []*wal.Tx
	for i := range n {
		rev := first + int64(i)
		txs = append(txs, &wal.Tx{Revision: rev, Time: 1e18 + rev, Writes: []wal.Write{
			{Kind: wal.KindPut, Key: "k", Value: "v", Created: i == 0},
			{Kind: wal.KindDelete, Key: "gone"},
		}})
	}
	return txs
}

func buildEntry(nonce, prev uint64, txs []*wal.Tx) []byte {
	var b entryBuilder
	for _, tx := range txs {
		b.add(wal.AppendTxRecord(nil, tx), tx.Revision)
	}
	return b.encode(nonce, prev)
}

func TestEntry_RoundTrip(t *testing.T) {
	txs := testTxs(41, 3)
	e := buildEntry(0xfeedface, 0xbeef, txs)
	got, err := decodeEntry(e)
	require.NoError(t, err)
	require.Equal(t, entry{nonce: 0xfeedface, prev: 0xbeef, txs: txs}, got)
}

func TestEntry_DamageIsFound(t *testing.T) {
	e := buildEntry(7, 6, testTxs(1, 2))
	for i := range e {
		d := append([]byte(nil), e...)
		d[i] ^= 0x10
		_, err := decodeEntry(d)
		require.ErrorIs(t, err, errBadEntry, "flipped byte %d", i)
	}
	for n := range len(e) {
		_, err := decodeEntry(e[:n])
		require.ErrorIs(t, err, errBadEntry, "cut at %d", n)
	}
	// Records out of order are refused even when well framed.
	txs := testTxs(1, 2)
	txs[1].Revision = 5
	_, err := decodeEntry(buildEntry(7, 6, txs))
	require.ErrorIs(t, err, errBadEntry)
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(buildEntry(1, 0, testTxs(1, 1)))
	f.Add(buildEntry(2, 1, testTxs(100, 4)))
	f.Add([]byte("L\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		again, err := decodeEntry(buildEntry(e.nonce, e.prev, e.txs))
		require.NoError(t, err)
		require.Equal(t, e, again)
	})
}
