package engine_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/livekv/livekv/internal/gcbusy"
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
	// A request brings its own copy of a key: look keys up with copies,
	// not the strings stored, which an index compares by pointer alone.
	for i, k := range keys {
		keys[i] = strings.Clone(k)
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

// BenchmarkDB_Churn_AfterRange is BenchmarkDB_Churn with a range of one
// key before each operation: the range copies the ordered tree, and the
// deletion and the new key then copy the nodes on their paths (the tree
// is copy-on-write), which is what a change of keys costs in a store
// that ranges read as often.
func BenchmarkDB_Churn_AfterRange(b *testing.B) {
	db, keys := loadedDB(b)
	r := rand.New(rand.NewPCG(4, 4))
	next := len(keys)
	opts := &engine.RangeOptions{Limit: 1}
	b.ReportAllocs()
	for b.Loop() {
		for _, err := range enginetest.Items(db.Range(keys[r.IntN(len(keys))], "", opts)) {
			if err != nil {
				b.Fatal(err)
			}
		}
		next = churnOne(b, db, keys, r.IntN(len(keys)), next)
	}
}

// churnOne deletes keys[i] and creates a new key, numbered next, in its
// place, in two transactions; it returns the next number.
func churnOne(b *testing.B, db *engine.DB, keys []string, i, next int) int {
	if _, err := db.Delete(keys[i]); err != nil {
		b.Fatal(err)
	}
	keys[i] = benchKey(next)
	if _, err := db.Set(keys[i], benchValue, nil); err != nil {
		b.Fatal(err)
	}
	return next + 1
}

// BenchmarkDB_Churn deletes a random key and creates a new one, in two
// transactions an operation: the store keeps 1M keys while keys come and
// go, and their entries are reclaimed and used again.
func BenchmarkDB_Churn(b *testing.B) {
	db, keys := loadedDB(b)
	r := rand.New(rand.NewPCG(3, 3))
	next := len(keys)
	b.ReportAllocs()
	for b.Loop() {
		next = churnOne(b, db, keys, r.IntN(len(keys)), next)
	}
}

func BenchmarkDB_Get_Random(b *testing.B) {
	db, keys := loadedDB(b)
	b.Run("goroutines=1", func(b *testing.B) {
		b.ReportAllocs()
		r := rand.New(rand.NewPCG(1, 0))
		for b.Loop() {
			if _, err := db.Get(keys[r.IntN(len(keys))]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	for _, par := range []int{4} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
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

// BenchmarkDB_Range_1000 scans 1000 keys from a random start. With
// gc=busy, collections run back to back meanwhile, so that every scan runs
// while the collector marks and pays its write barriers.
//
// Besides the time a scan takes, it reports (on Linux) cpu-ns/op, the
// processor time of the scanning goroutine alone, locked to its thread:
// while a collection marks, the runtime gives its mark workers a share of
// every processor (a quarter of each when GOMAXPROCS is 2), the scan's
// included, so a scan's time grows by their turns on its processor as
// well as by what the scan itself pays.
func BenchmarkDB_Range_1000(b *testing.B) {
	db, _ := loadedDB(b)
	for _, busy := range []bool{false, true} {
		b.Run(map[bool]string{false: "gc=idle", true: "gc=busy"}[busy], func(b *testing.B) {
			if busy {
				defer gcbusy.Start()()
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, cpuOK := gcbusy.ThreadCPU()
			defer func() {
				if cpu1, ok := gcbusy.ThreadCPU(); cpuOK && ok {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
			}()
			r := rand.New(rand.NewPCG(3, 3))
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, err := range enginetest.Items(db.Range(benchKey(r.IntN(benchKeys-1000)), "", &engine.RangeOptions{Limit: 1000})) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != 1000 {
					b.Fatalf("got %d items", n)
				}
			}
		})
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
		if _, _, err := db.Increment(keys[r.IntN(1000)], 1); err != nil {
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

// BenchmarkDB_Set_Subscribers measures writes with n subscriptions of
// which none match the keys written: they must cost writers little.
func BenchmarkDB_Set_Subscribers(b *testing.B) {
	for _, n := range []int{0, 100, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			db, err := engine.Open("", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for i := 0; i < n; i++ {
				p := []string{fmt.Sprintf("user:%d:*", i), fmt.Sprintf("*:session:%d", i), fmt.Sprintf("order:%d", i)}[i%3]
				s, err := db.Subscribe([]string{p}, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := db.Set(benchKey(i%100_000), benchValue, nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkDB_Set_SlowConsumer compares writers' p99 commit latency with
// and without a subscriber to every key that never reads.
func BenchmarkDB_Set_SlowConsumer(b *testing.B) {
	for _, slow := range []bool{false, true} {
		b.Run(fmt.Sprintf("stalled_subscriber=%v", slow), func(b *testing.B) {
			db, err := engine.Open("", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if slow {
				s, err := db.Subscribe([]string{"*"}, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
			}
			lat := make([]time.Duration, 0, 1<<20)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				start := time.Now()
				if _, err := db.Set(benchKey(i%100_000), benchValue, nil); err != nil {
					b.Fatal(err)
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(start))
				}
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkOpen_Replay measures recovery: Open of a log of 200,000
// one-write transactions (100-byte values over 100,000 keys), with no
// snapshot, reported as records replayed per second; and Open of the same
// state from a snapshot.
func BenchmarkOpen_Replay(b *testing.B) {
	const records = 200_000
	dir := b.TempDir()
	db, err := engine.Open(dir, &engine.Options{Sync: engine.SyncNever, CheckpointBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < records; i++ {
		if _, err := db.Set(benchKey(i%100_000), benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	reopen := func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			db, err := engine.Open(dir, &engine.Options{CheckpointBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			if db.Revision() != records {
				b.Fatalf("revision %d after replay", db.Revision())
			}
			db.Close()
		}
	}
	b.Run("log", func(b *testing.B) {
		reopen(b)
		b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	db, err = engine.Open(dir, &engine.Options{CheckpointBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	b.Run("snapshot", func(b *testing.B) {
		reopen(b)
		b.ReportMetric(float64(100_000)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}
