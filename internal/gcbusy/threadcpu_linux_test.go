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

	// Another goroutine spins on a thread of its own, whatever else
	// runs, until its thread has used 50 ms (for at most ten seconds of a
	// loaded machine's), while this one sleeps.
	var stop atomic.Bool
	var spun atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s0, _ := gcbusy.ThreadCPU()
		for !stop.Load() {
			s, _ := gcbusy.ThreadCPU()
			spun.Store(int64(s - s0))
		}
	}()
	deadline = time.Now().Add(10 * time.Second)
	for time.Duration(spun.Load()) < 50*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	t2, _ := gcbusy.ThreadCPU()
	stop.Store(true)
	wg.Wait()
	other := time.Duration(spun.Load())
	if other < 50*time.Millisecond {
		t.Fatalf("the spinning goroutine's thread counted %v in ten seconds", other)
	}
	if slept := t2 - t1; slept > other/2 {
		t.Fatalf("the sleeping thread counted %v while another spun for %v", slept, other)
	}
}
