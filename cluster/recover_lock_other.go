//go:build !unix

package cluster

// notLocked cannot tell here whether a BoltDB file is open; opening it
// then waits until it is not.
func notLocked(string) error { return nil }
