//go:build !purego

package engine

import "unsafe"

// prefetch asks the processor to start loading the first n entries of es,
// each one line of the cache that a scan reads whole (the key's reference
// and the visible version), and returns without waiting for them.
//
// It is assembly because Go has no prefetch, and it is kept, with the
// purego build that goes without it, because it measured well over the
// 10% the project asks of such code: BenchmarkDB_Range_1000 and the
// suite's BenchmarkRange1000_Interleaved, with and without -tags purego,
// benchstat over 10 interleaved runs each (docs/engine.md).
//
//go:noescape
func prefetch(es *[scanBatch]*entry, n int)

// prefetchLine asks the processor to start loading the cache line at p,
// and returns without waiting for it. A snapshot's load prefetches each
// hash slot eight inserts ahead (index.putAll): BenchmarkIndex_PutAll,
// binaries with and without -tags purego run in turn 4 times, medians,
// 70 and 49 ns a key.
//
//go:noescape
func prefetchLine(p unsafe.Pointer)
