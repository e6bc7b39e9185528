package engine_test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/livekv/livekv/engine"
)

// The benchmarks use 1M keys "key:%08d" with 100-byte values. bench/ runs
// the same workloads side by side with peer engines.

const benchKeys = 1_000_000

var benchValue = string(make([]byte, 100))

func benchKey(i int) string { return fmt.Sprintf("key:%08d", i) }

func loadedDB(b *testing.B) (*engine.DB, []string) {
	b.Helper()
	db, err := engine.Open("", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		if _, err := db.Set(k, benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
	return db, keys
}

func BenchmarkDB_Set_Random(b *testing.B) {
	db, keys := loadedDB(b)
	r := rand.New(rand.NewPCG(2, 2))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Set(keys[r.IntN(len(keys))], benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDB_Get_Random(b *testing.B) {
	db, keys := loadedDB(b)
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			var seed atomic.Uint64
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(seed.Add(1), 0))
				for pb.Next() {
					if _, err := db.Get(keys[r.IntN(len(keys))]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkDB_Range_1000(b *testing.B) {
	db, _ := loadedDB(b)
	r := rand.New(rand.NewPCG(3, 3))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, err := range db.Range(benchKey(r.IntN(benchKeys-1000)), "", &engine.RangeOptions{Limit: 1000}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("got %d items", n)
		}
	}
}

func BenchmarkDB_Increment(b *testing.B) {
	db, keys := loadedDB(b)
	for i := 0; i < 1000; i++ {
		if _, err := db.Set(keys[i], "0", nil); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(4, 4))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Increment(keys[r.IntN(1000)], 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDB_CompareAndSwap(b *testing.B) {
	db, keys := loadedDB(b)
	r := rand.New(rand.NewPCG(5, 5))
	b.ReportAllocs()
	for b.Loop() {
		k := keys[r.IntN(len(keys))]
		it, err := db.Get(k)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.CompareAndSwap(k, it.Revision, benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
}
