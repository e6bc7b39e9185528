//go:build !amd64 || purego

package engine

import "unsafe"

// prefetch is a no-op where the engine has no assembly for it (other
// architectures, or the purego build tag): scans are correct without it,
// only slower on a store much larger than the processor's caches.
func prefetch(es *[scanBatch]*entry, n int) {}

// prefetchLine is a no-op where prefetch is.
func prefetchLine(p unsafe.Pointer) {}
