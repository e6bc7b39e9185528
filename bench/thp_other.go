//go:build !linux

package main

// noHugePages does nothing where resident memory is not read from
// /proc/self/statm.
func noHugePages() error { return nil }
