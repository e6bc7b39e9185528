// Package enginetest holds helpers for tests of packages built on engine.
package enginetest

import (
	"iter"

	"github.com/livekv/livekv/engine"
)

// Items turns what DB.Range, DB.Prefix and their Tx forms return into one
// iterator: the scan's, or one that yields the error that kept the scan
// from starting. A test then checks both in its loop, in any goroutine:
//
//	for it, err := range enginetest.Items(db.Range("", "", nil)) { ... }
func Items(seq iter.Seq2[engine.Item, error], err error) iter.Seq2[engine.Item, error] {
	if err != nil {
		return func(yield func(engine.Item, error) bool) { yield(engine.Item{}, err) }
	}
	return seq
}
