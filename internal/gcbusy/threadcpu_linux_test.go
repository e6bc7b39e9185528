package gcbusy_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/gcbusy"
)

// TestThreadCPU_CountsTheThreadAlone checks that ThreadCPU counts the
// calling thread's work, and not the process's: it grows while the
// locked goroutine spins, and hardly while it sleeps and another
// goroutine spins on another thread.
func TestThreadCPU_CountsTheThreadAlone(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0, ok := gcbusy.ThreadCPU()
	if !ok {
		t.Fatal("no thread time on Linux")
	}
	// Spin until 20 ms of the thread's time have passed, for at most ten
	// seconds of a loaded machine's.
	deadline := time.Now().Add(10 * time.Second)
	var t1 time.Duration
	for t1 < t0+20*time.Millisecond && time.Now().Before(deadline) {
		t1, _ = gcbusy.ThreadCPU()
	}
	if t1 < t0+20*time.Millisecond {
		t.Fatalf("the thread's time grew by %v in ten seconds of spinning", t1-t0)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	var spun time.Duration
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // on a thread of its own, whatever else runs
		defer runtime.UnlockOSThread()
		s0, _ := gcbusy.ThreadCPU()
		for !stop.Load() {
		}
		s1, _ := gcbusy.ThreadCPU()
		spun = s1 - s0
	}()
	time.Sleep(100 * time.Millisecond)
	t2, _ := gcbusy.ThreadCPU()
	stop.Store(true)
	wg.Wait()
	if spun < 20*time.Millisecond {
		t.Fatalf("the spinning goroutine's thread counted %v in 100 ms", spun)
	}
	if slept := t2 - t1; slept > spun/2 {
		t.Fatalf("the sleeping thread counted %v while another spun for %v", slept, spun)
	}
}
