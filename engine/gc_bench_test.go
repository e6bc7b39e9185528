package engine_test

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
)

// gcKeys sizes BenchmarkGC_KeyScaling; small by default, so that
// `go test -bench .` stays quick. Issue 19's goal compares 10M keys with
// 1M: -args -gckeys 1000000,10000000 (at 10M, a live heap of about
// 3.6 GB by 1M's 363 bytes a key, not measured at 10M, and up to twice
// that while loading).
var gcKeys = flag.String("gckeys", "100000,1000000",
	"comma-separated store sizes (keys) for BenchmarkGC_KeyScaling")

// BenchmarkGC_KeyScaling measures what a store of N keys costs the garbage
// collector: it loads N keys "key:%010d" with random 100-byte values into a
// DB in memory, in random order, then times full collections (runtime.GC, the store live).
// Each size reports
//
//   - gc-ms: the median time of a full collection (ns/op is their mean);
//   - heap-B/key: the live heap after a collection, less the heap before
//     the DB was opened, per key: entries, versions, tree, hash index,
//     keys and values;
//   - scan-B/key: the bytes of the heap the collector scans for pointers,
//     whole process, per key (the tree's nodes, the index's directories,
//     the heads of slabs that hold them);
//   - objects/key: the heap objects it marks, per key; each is also a
//     span, or part of one, that runtime.GC sweeps;
//   - mark-cpu-ms: the median processor time of a collection, summed over
//     the processors (the runtime's estimate, /cpu/classes/gc/total in
//     runtime/metrics: the mark workers, idle ones included, assists and
//     the pauses). Unlike gc-ms, the wall time of runtime.GC, it leaves
//     out the sweep of every span, which runtime.GC finishes before it
//     returns and a running program does a little at a time as it
//     allocates.
//
// With two sizes or more, the sub-benchmark "ratio" reports gc-ratio, the
// median of every collection timed at the largest size over that at the
// smallest, over all the runs of this process (-count), mark-ratio, the
// same of mark-cpu-ms, and keys-ratio, the ratio of the sizes: a
// collector whose mark work does not grow with the key count keeps
// mark-ratio far below keys-ratio.
//
// The change history is kept to one event, so that its 100,000 events by
// default (a bounded cost, not one per key) do not count at small sizes.
func BenchmarkGC_KeyScaling(b *testing.B) { gcScaling(b, 0) }

// BenchmarkGC_KeyScaling_Written is BenchmarkGC_KeyScaling of a store in
// use: after the load, half as many writes as keys overwrite keys chosen
// at random, as a store that takes writes all the time has had, and the
// store rests for its visit at rest (twice the visit's wait of a second
// without a head set, and half a second: 2.5 seconds) before the
// collections are timed.
func BenchmarkGC_KeyScaling_Written(b *testing.B) { gcScaling(b, 0.5) }

// gcScaling runs BenchmarkGC_KeyScaling at every size of -gckeys, with
// writes a key overwritten at random after the load.
func gcScaling(b *testing.B, writes float64) {
	sizes, err := parseSizes(*gcKeys)
	if err != nil {
		b.Fatal(err)
	}
	times := map[int][]time.Duration{} // every collection timed, by size
	marks := map[int][]time.Duration{} // the processor time of its marking
	for _, n := range sizes {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			t, m := benchGC(b, n, int(writes*float64(n)))
			times[n], marks[n] = append(times[n], t...), append(marks[n], m...)
		})
	}
	if len(sizes) < 2 {
		return
	}
	lo, hi := sizes[0], sizes[len(sizes)-1]
	b.Run("ratio", func(b *testing.B) {
		if len(times[lo]) == 0 || len(times[hi]) == 0 {
			b.Skipf("needs both keys=%d and keys=%d measured in this run", lo, hi)
		}
		mlo, mhi := median(times[lo]), median(times[hi])
		klo, khi := median(marks[lo]), median(marks[hi])
		if mlo <= 0 || klo <= 0 {
			b.Skipf("a collection at keys=%d took no time", lo)
		}
		b.ReportMetric(0, "ns/op") // nothing timed here
		b.ReportMetric(float64(mhi)/float64(mlo), "gc-ratio")
		b.ReportMetric(float64(khi)/float64(klo), "mark-ratio")
		b.ReportMetric(float64(hi)/float64(lo), "keys-ratio")
	})
}

// benchGC loads n keys, overwrites writes of them chosen at random, times
// full collections and returns their times and the processor time of
// their marking.
func benchGC(b *testing.B, n, writes int) (times, marks []time.Duration) {
	runtime.GC()
	before := liveHeap()
	db, err := engine.Open("", &engine.Options{HistoryEvents: 1, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
		db = nil
		runtime.GC() // leave no garbage to the next size
	}()
	r := rand.New(rand.NewPCG(uint64(n), 19))
	order := r.Perm(n) // in random order, as the suite's memory workload
	for range writes {
		order = append(order, r.IntN(n)) // then overwrites, at random
	}
	var buf [100]byte
	for _, i := range order {
		for j := 0; j+8 <= len(buf); j += 8 {
			binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
		}
		binary.LittleEndian.PutUint32(buf[96:], r.Uint32())
		// Keys and values made here, each its own, as the suite's memory
		// workload makes them.
		if _, err := db.Set(fmt.Sprintf("key:%010d", i), string(buf[:]), nil); err != nil {
			b.Fatal(err)
		}
	}
	order = nil
	if writes > 0 {
		// The visit at rest: armed by a head set before the last, it
		// may first find heads set since, and look again.
		time.Sleep(2*engine.HeadsRestAfter() + 500*time.Millisecond)
	}
	runtime.GC()
	perKey := float64(liveHeap()-before) / float64(n)
	scan, objects := heapScan()

	for b.Loop() {
		mark := markCPU()
		start := time.Now()
		runtime.GC()
		times = append(times, time.Since(start))
		marks = append(marks, markCPU()-mark)
	}
	runtime.KeepAlive(db)
	b.ReportMetric(float64(median(times).Nanoseconds())/1e6, "gc-ms")
	b.ReportMetric(float64(median(marks).Nanoseconds())/1e6, "mark-cpu-ms")
	b.ReportMetric(perKey, "heap-B/key")
	b.ReportMetric(float64(scan)/float64(n), "scan-B/key")
	b.ReportMetric(float64(objects)/float64(n), "objects/key")
	return times, marks
}

// markCPU returns the processor time the collector has spent marking, in
// its workers, in assists and in its pauses, since the process began: the
// runtime's estimate, brought up to date at the end of each cycle.
func markCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * 1e9)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// liveHeap returns the bytes of heap objects; right after runtime.GC, the
// live heap.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// heapScan returns the bytes of heap the collector scans for pointers
// (less the bytes of its objects past their last pointer) and the number
// of heap objects it marks, whole process; right after runtime.GC, of the
// live heap.
func heapScan() (scan, objects uint64) {
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}, {Name: "/gc/heap/objects:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// parseSizes parses -gckeys: positive sizes, returned in increasing order.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-gckeys: %q is not a positive number of keys", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	return slices.Compact(sizes), nil
}
