package main

import "syscall"

// PR_SET_THP_DISABLE and PR_GET_THP_DISABLE of prctl(2).
const (
	prSetTHPDisable = 41
	prGetTHPDisable = 42
)

// noHugePages turns transparent huge pages off for this process, so that
// its resident memory counts the 4 KiB pages an engine touched, whatever
// the kernel's THP mode. With mode "always", the kernel backs the heap
// with 2 MiB pages and fills them in the background (khugepaged), and a
// store of a few MiB could read as no memory at all, or as several MiB
// more than it holds. With "madvise" (and "never"), Go's heap has no huge
// pages, so this changes nothing there.
func noHugePages() error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTHPDisable, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
