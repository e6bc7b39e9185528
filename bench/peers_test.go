package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/gcbusy"
)

// Go benchmarks of the in-memory workloads, livekv beside buntdb, with 1M
// keys: go test -run '^$' -bench . -benchtime 1000000x (docs/engine.md).
// The suite (go run .) runs the same workloads against every peer.

const numKeys = 1_000_000

var loadOnce sync.Once
var shuffledKeys1M []string

func shuffledKeys() []string {
	loadOnce.Do(func() { shuffledKeys1M = shuffled(numKeys, 1) })
	return shuffledKeys1M
}

// memoryPeers are the peers of the Go benchmarks.
var memoryPeers = []peer{peers[0], peers[1]}

func open(b *testing.B, p peer) KV {
	kv, err := p.open("", false)
	if err != nil {
		b.Fatal(err)
	}
	return kv
}

func loaded(b *testing.B, p peer) KV {
	kv := open(b, p)
	if err := load(kv, shuffledKeys()); err != nil {
		b.Fatal(err)
	}
	return kv
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// BenchmarkInsert inserts the keys in random order into an empty store; one
// op is one insert.
func BenchmarkInsert(b *testing.B) {
	ks := shuffledKeys()
	for _, p := range memoryPeers {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			kv := open(b, p)
			defer func() { kv.Close() }()
			for i := 0; b.Loop(); i++ {
				if i == len(ks) {
					b.StopTimer()
					kv.Close()
					kv = open(b, p)
					i = 0
					b.StartTimer()
				}
				must(kv.Set(ks[i], value100))
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	ks := shuffledKeys()
	for _, p := range memoryPeers {
		kv := loaded(b, p)
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", p.name, par), func(b *testing.B) {
				b.ReportAllocs()
				parallel(b, par, func(r *rand.Rand) { must(kv.Get(ks[r.IntN(len(ks))])) })
			})
		}
		kv.Close()
	}
}

// parallel makes b.N calls of op, spread over exactly goroutines
// goroutines, which take the calls in chunks.
func parallel(b *testing.B, goroutines int, op func(r *rand.Rand)) {
	const chunk = 256
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g)+1, 7))
			for {
				end := next.Add(chunk)
				start := end - chunk
				if start >= int64(b.N) {
					return
				}
				for i := start; i < min(end, int64(b.N)); i++ {
					op(r)
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRange1000(b *testing.B) {
	for _, p := range memoryPeers {
		kv := loaded(b, p)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			r := rand.New(rand.NewPCG(2, 2))
			for b.Loop() {
				if n, err := kv.Range(keyOf(r.IntN(numKeys-1000)), 1000); err != nil || n != 1000 {
					panic(fmt.Sprint(n, err))
				}
			}
		})
		kv.Close()
	}
}

// BenchmarkRange1000_Interleaved runs the ranges of BenchmarkRange1000 on
// livekv and buntdb in turn, 100 of each per round, both stores loaded at
// once, and reports the median over the rounds of livekv's time over
// buntdb's. On a shared machine whose speed drifts by the minute, a ratio
// of neighbours is steadier than two figures taken a minute apart. One op
// is one round. With gc=busy, a goroutine runs one collection after
// another meanwhile, so that every range runs while the collector marks.
// On Linux it also reports each engine's processor time a range, of the
// ranging goroutine alone (locked to its thread): the collector's mark
// workers take turns on its processor too (a quarter of each processor
// when GOMAXPROCS is 2), which the time a range takes counts and this
// does not.
func BenchmarkRange1000_Interleaved(b *testing.B) {
	kvs := []KV{loaded(b, memoryPeers[0]), loaded(b, memoryPeers[1])}
	defer func() {
		for _, kv := range kvs {
			kv.Close()
		}
	}()
	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "gc=idle", true: "gc=busy"}[busy]
		b.Run(name, func(b *testing.B) {
			if busy {
				defer gcbusy.Start()()
			}
			interleavedRanges(b, kvs)
		})
	}
}

func interleavedRanges(b *testing.B, kvs []KV) {
	r := rand.New(rand.NewPCG(2, 2))
	starts := make([]string, 100)
	var ratios []float64
	var took, cpu [2]time.Duration
	cpuOK := true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	for b.Loop() {
		for i := range starts {
			starts[i] = keyOf(r.IntN(numKeys - 1000))
		}
		var d [2]time.Duration
		for j, kv := range kvs {
			t0 := time.Now()
			c0, ok0 := gcbusy.ThreadCPU()
			for _, s := range starts {
				if n, err := kv.Range(s, 1000); err != nil || n != 1000 {
					panic(fmt.Sprint(n, err))
				}
			}
			c1, ok1 := gcbusy.ThreadCPU()
			d[j] = time.Since(t0)
			took[j] += d[j]
			cpu[j] += c1 - c0
			cpuOK = cpuOK && ok0 && ok1
		}
		ratios = append(ratios, float64(d[0])/float64(d[1]))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "livekv/buntdb")
	ranges := float64(len(ratios) * len(starts))
	b.ReportMetric(float64(took[0].Microseconds())/ranges, "livekv-µs/range")
	b.ReportMetric(float64(took[1].Microseconds())/ranges, "buntdb-µs/range")
	if cpuOK {
		b.ReportMetric(float64(cpu[0].Microseconds())/ranges, "livekv-cpu-µs/range")
		b.ReportMetric(float64(cpu[1].Microseconds())/ranges, "buntdb-cpu-µs/range")
	}
}

// BenchmarkCompareAndSwap reads a random key and replaces its value only if
// it has not changed since (livekv compares revisions, buntdb values).
func BenchmarkCompareAndSwap(b *testing.B) {
	randomKeyOps(b, true, 4, func(kv KV, k string) error { return kv.CAS(k, value100) })
}

// BenchmarkIncrement increments random keys of an empty store.
func BenchmarkIncrement(b *testing.B) {
	randomKeyOps(b, false, 3, func(kv KV, k string) error { return kv.Incr(k) })
}

// BenchmarkSet overwrites random keys of a store loaded with 1M keys.
func BenchmarkSet(b *testing.B) {
	randomKeyOps(b, true, 4, func(kv KV, k string) error { return kv.Set(k, value100) })
}

// randomKeyOps runs op on random keys of each peer's store, loaded with
// the 1M keys first if load.
func randomKeyOps(b *testing.B, load bool, seed uint64, op func(kv KV, key string) error) {
	ks := shuffledKeys()
	for _, p := range memoryPeers {
		kv := open(b, p)
		if load {
			kv.Close()
			kv = loaded(b, p)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			r := rand.New(rand.NewPCG(seed, seed))
			for b.Loop() {
				must(op(kv, ks[r.IntN(len(ks))]))
			}
		})
		kv.Close()
	}
}
