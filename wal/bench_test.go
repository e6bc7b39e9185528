package wal_test

import (
	"fmt"
	"testing"

	"github.com/livekv/livekv/wal"
)

// BenchmarkDecodeItem: one op is one snapshot item decoded as Open reads
// them (borrowed, into one Item), of the suite's shape: a 12-byte key, a 100-byte value,
// revisions near a million.
func BenchmarkDecodeItem(b *testing.B) {
	const n = 1024
	payloads := make([][]byte, n)
	for i := range payloads {
		it := &wal.Item{Key: fmt.Sprintf("key:%08d", i), Value: string(make([]byte, 100)),
			Revision: 1_000_000 + int64(i), CreateRevision: 900_000 + int64(i), Version: 1 + int64(i%3)}
		payloads[i] = wal.AppendItem(nil, it)
	}
	var it wal.Item
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := wal.ReadItem(payloads[i%n], true, &it); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckTx: one op is one transaction record of one write checked
// as Open checks the segments of history alone (every write decoded, none
// kept), of the suite's shape.
func BenchmarkCheckTx(b *testing.B) {
	const n = 1024
	payloads := make([][]byte, n)
	for i := range payloads {
		tx := &wal.Tx{Revision: 1_000_000 + int64(i), Time: 1_764_900_000_000_000_000 + int64(i),
			Writes: []wal.Write{{Kind: wal.KindPut, Created: i%2 == 0, Key: fmt.Sprintf("key:%08d", i), Value: string(make([]byte, 100))}}}
		payloads[i] = wal.AppendTx(nil, tx)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := wal.CheckTx(payloads[i%n], wal.SegmentVersion); err != nil {
			b.Fatal(err)
		}
	}
}
