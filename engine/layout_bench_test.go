package engine_test

import (
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"sync"
	"testing"
)

var layoutKeys = flag.Int("layoutkeys", 10_000_000, "keys of BenchmarkLayout_Scan's model")

// layoutModel is a model of two layouts of a store's entries, for
// BenchmarkLayout_Scan: today's entries of 64 bytes that hold the visible
// version's fields (8 words), and entries of 32 bytes (4 words) whose
// version fields would sit in a header between the key and the value in
// the chunks, a record of [key 12][header 8][value 100] a key. order is
// the tree's order of entry numbers: keys inserted at random.
type layoutModel struct {
	e64, e32 []uint64
	records  []byte
	order    []int
}

var (
	layoutOnce sync.Once
	layout     *layoutModel
)

func newLayoutModel(n int) *layoutModel {
	const rec = 120
	m := &layoutModel{
		e64:     make([]uint64, n*8),
		e32:     make([]uint64, n*4),
		records: make([]byte, n*rec+rec),
		order:   rand.New(rand.NewPCG(1, 2)).Perm(n),
	}
	for id := range n {
		off := uint64(id) * rec
		copy(m.e64[id*8:], []uint64{off, 12, 100, off + 20, uint64(id) + 1, uint64(id) + 1, 1, 0})
		copy(m.e32[id*4:], []uint64{off, 12, 100, 0})
		binary.LittleEndian.PutUint64(m.records[off+12:], uint64(id)+1)
	}
	return m
}

var layoutSink uint64

// BenchmarkLayout_Scan times, on a model, what a scan pays a key to read
// the fields of each key's visible version: from a 64-byte entry alone,
// or from a 32-byte entry and then its record's header (its first word;
// how the header would be encoded is left out), one more line of
// the processor's cache a key, read after the entry (the header's place
// is in the entry), or gathered first for the whole scan and read in a
// second pass, so that the processor overlaps the misses. A scan is 1,000
// keys in the tree's order from a random start: entries at random
// places. It reports ns/key. The model does nothing else a scan does
// (locks, sequence checks, items); docs/engine.md, "A 32-byte entry",
// has what it measured.
func BenchmarkLayout_Scan(b *testing.B) {
	layoutOnce.Do(func() { layout = newLayoutModel(*layoutKeys) })
	m := layout
	refs := make([]uint64, 1000)
	cases := []struct {
		name string
		scan func(ids []int)
	}{
		{"entry=64", func(ids []int) {
			for _, id := range ids {
				e := m.e64[id*8 : id*8+8 : id*8+8]
				layoutSink += e[2] + e[3] + e[4] + e[5] + e[6] + e[7]
			}
		}},
		{"entry=32+header", func(ids []int) {
			for _, id := range ids {
				e := m.e32[id*4 : id*4+4 : id*4+4]
				v := binary.LittleEndian.Uint64(m.records[e[0]+12:])
				layoutSink += e[2] + v
			}
		}},
		{"entry=32+header,gathered", func(ids []int) {
			for i, id := range ids {
				refs[i] = m.e32[id*4]
			}
			for i, id := range ids {
				v := binary.LittleEndian.Uint64(m.records[refs[i]+12:])
				layoutSink += m.e32[id*4+2] + v
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			b.ReportAllocs()
			keys := 0
			for b.Loop() {
				s := r.IntN(len(m.order) - 1000)
				c.scan(m.order[s : s+1000])
				keys += 1000
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(keys), "ns/key")
		})
	}
}
