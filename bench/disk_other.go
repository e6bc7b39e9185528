//go:build !linux

package main

// diskOf says nothing of dir where statfs(2) types are not read.
func diskOf(dir string) (desc string, inMemory bool, err error) {
	return dir, false, nil
}
