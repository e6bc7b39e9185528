package gcbusy_test

import (
	"runtime"
	"testing"

	"github.com/livekv/livekv/internal/gcbusy"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStart_CollectsUntilStopped(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := gcbusy.Start()
	for i := 0; i < 100; i++ {
		runtime.ReadMemStats(&after)
		if after.NumGC >= before.NumGC+3 {
			break
		}
		runtime.Gosched()
	}
	stop()
	if after.NumGC < before.NumGC+3 {
		t.Fatalf("got %d collections while busy, want at least 3", after.NumGC-before.NumGC)
	}
}
