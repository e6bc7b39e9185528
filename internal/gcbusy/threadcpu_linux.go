package gcbusy

import (
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3

// ThreadCPU returns the processor time the calling OS thread has used,
// and true; on systems where it cannot tell, false. It counts the work of
// one goroutine only while that goroutine is locked to its thread
// (runtime.LockOSThread): the runtime then runs nothing else on it, not
// even the collector's mark workers, which take the goroutine's processor
// by turns while a collection marks (a quarter of each processor when
// GOMAXPROCS is 2 or 3) and run on another thread meanwhile.
func ThreadCPU() (time.Duration, bool) {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
