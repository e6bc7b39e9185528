package main

import (
	"syscall"
	"testing"
)

// TestNoHugePages checks that TestMain, as main does, turned transparent
// huge pages off for the process.
func TestNoHugePages(t *testing.T) {
	off, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTHPDisable, 0, 0)
	if errno != 0 {
		t.Fatalf("prctl(PR_GET_THP_DISABLE): %v", errno)
	}
	if off != 1 {
		t.Fatalf("transparent huge pages are on for the suite's process (PR_GET_THP_DISABLE gave %d)", off)
	}
}
