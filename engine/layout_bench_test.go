package engine

import (
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"testing"
	"unsafe"
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
// how the header would be encoded is left out), one more line of the
// processor's cache a key, read after the entry that says where it is.
// Each either reads the entries one after another, or as a scan does
// (scanBatch at a time, all prefetched before the first is read), and
// then, for the headers, prefetches the batch's records before it reads
// them. A scan is 1,000 keys in the tree's order from a random start:
// entries at random places. It reports ns/key. The model does nothing
// else a scan does (locks, sequence checks, items); docs/engine.md, "A
// 32-byte entry", has what it measured.
func BenchmarkLayout_Scan(b *testing.B) {
	m := newLayoutModel(*layoutKeys) // garbage once the benchmark ends
	header := func(ref uint64) uint64 { return binary.LittleEndian.Uint64(m.records[ref+12:]) }
	batches := func(ids []int, f func(ids []int)) {
		for len(ids) > 0 {
			k := min(scanBatch, len(ids))
			f(ids[:k])
			ids = ids[k:]
		}
	}
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
				layoutSink += e[2] + header(e[0])
			}
		}},
		{"entry=64,prefetched", func(ids []int) {
			batches(ids, func(ids []int) {
				for _, id := range ids {
					prefetchLine(unsafe.Pointer(&m.e64[id*8]))
				}
				for _, id := range ids {
					e := m.e64[id*8 : id*8+8 : id*8+8]
					layoutSink += e[2] + e[3] + e[4] + e[5] + e[6] + e[7]
				}
			})
		}},
		{"entry=32+header,prefetched", func(ids []int) {
			var refs [scanBatch]uint64
			batches(ids, func(ids []int) {
				for _, id := range ids {
					prefetchLine(unsafe.Pointer(&m.e32[id*4]))
				}
				for i, id := range ids {
					refs[i] = m.e32[id*4]
					prefetchLine(unsafe.Pointer(&m.records[refs[i]+12]))
				}
				for i, id := range ids {
					layoutSink += m.e32[id*4+2] + header(refs[i])
				}
			})
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
