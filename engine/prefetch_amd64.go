//go:build !purego

package engine

// prefetch asks the processor to start loading the first n entries of es,
// the two cache lines of each that a scan reads (the key and the visible
// version, the first 64 bytes), and returns without waiting for them.
//
//go:noescape
func prefetch(es *[scanBatch]*entry, n int)
