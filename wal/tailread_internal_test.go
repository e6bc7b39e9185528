package wal

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// allocatedBy returns the bytes that f allocates.
func allocatedBy(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestOpen_LongZeroTailReadInPieces: a last segment whose length runs far
// past its records in zeros (a file system that made a new length durable
// before the data, over many writes, or a file extended by accident) is a
// torn tail that Open truncates, reading the zeros in pieces: it allocates
// little, not the tail's size.
func TestOpen_LongZeroTailReadInPieces(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, nil, Replay{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	seg := appendSegmentHeader(nil, 1)
	for rev := int64(1); rev <= 3; rev++ {
		seg = appendRecord(seg, typeTx, appendTx(nil, &Tx{Revision: rev, Writes: []Write{{Kind: KindPut, Key: "k", Value: "v"}}}))
	}
	name := filepath.Join(dir, "wal", segmentName(1))
	require.NoError(t, os.WriteFile(name, seg, 0o644))
	const tail = 256 << 20
	require.NoError(t, os.Truncate(name, int64(len(seg))+tail)) // sparse: no disk used
	n := 0
	got := allocatedBy(func() {
		l, err = Open(dir, nil, Replay{Tx: func(*Tx) error { n++; return nil }})
	})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.Equal(t, 3, n)
	require.Less(t, got, uint64(16<<20), "bytes allocated to open a segment with a zero tail of %d", tail)
	st, err := os.Stat(name)
	require.NoError(t, err)
	require.Equal(t, int64(len(seg)), st.Size(), "the tail is truncated")
}

// TestScanFile_DamageAgreesWithScan: at damage of many kinds, scanFile,
// which reads what follows a bad record in pieces, in batches of
// candidates as small as one, returns what scan of the bytes whole does:
// the same result and the same error, a later good record found at the
// same offset.
func TestScanFile_DamageAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	record := func(rev int64, value string, version byte) []byte {
		p := appendTx(nil, &Tx{Revision: rev, Writes: []Write{{Kind: KindPut, Key: "k", Value: value}}})
		if version == segmentVersionNoTrailer {
			p = p[:len(p)-1]
		}
		return appendRecord(nil, typeTx, p)
	}
	old := laterBatch
	t.Cleanup(func() { laterBatch = old })
	const max = 1 << 12
	for try := range 3000 {
		version := []byte{segmentVersionNoTrailer, segmentVersion}[try%2]
		var b []byte
		for rev := int64(1); rev <= 6; rev++ {
			b = append(b, record(rev, string(make([]byte, rng.IntN(64))), version)...)
		}
		switch rng.IntN(7) {
		case 0: // a flipped bit
			i := rng.IntN(len(b))
			b[i] ^= 1 << rng.IntN(8)
		case 1: // cut short, then zeros
			b = append(b[:rng.IntN(len(b))], make([]byte, rng.IntN(100))...)
		case 2: // zeros over a span
			i := rng.IntN(len(b))
			clear(b[i:min(len(b), i+rng.IntN(40))])
		case 3: // garbage after the records, a copy of a record in it
			g := make([]byte, rng.IntN(300))
			for i := range g {
				g[i] = byte(rng.IntN(4))
			}
			b = append(b, g...)
			b = append(b, record(int64(rng.IntN(10)), "copy", version)...)
		case 4: // a record whose length names more than there is
			r := record(7, "x", version)
			r[rng.IntN(4)] ^= byte(1 << rng.IntN(8))
			b = append(b, r...)
		case 5: // a record over the limit, damaged (a whole one is not damage: scanFile says so)
			r := record(7, string(make([]byte, max+rng.IntN(10))), version)
			r[len(r)-1-rng.IntN(3)] ^= 1
			b = append(b, r...)
		case 6: // a flipped bit in the middle record, or a byte of 0x01s
			i := len(b) / 2
			b[i] ^= 1 << rng.IntN(8)
			b = append(b, bytes.Repeat([]byte{1}, rng.IntN(200))...)
		}
		laterBatch = []int{1, 3, old}[try%3]
		type got struct {
			payloads [][]byte
			res      scanResult
			err      string
		}
		var whole, pieces got
		res, err := scan(b, segmentHeaderSize, version, max, 0, func(_ byte, p []byte) error {
			whole.payloads = append(whole.payloads, slices.Clone(p))
			return nil
		})
		whole.res = res
		if err != nil {
			whole.err = err.Error()
		}
		r := bytesFile{bytes.NewReader(append(make([]byte, segmentHeaderSize), b...))}
		res, err = scanFile(r, segmentHeaderSize, version, max, 0, func(p []byte) error {
			pieces.payloads = append(pieces.payloads, slices.Clone(p))
			return nil
		})
		pieces.res = res
		if err != nil {
			pieces.err = err.Error()
		}
		require.Equal(t, whole, pieces, "try %d", try)
	}
}
