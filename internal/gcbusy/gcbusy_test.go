package gcbusy_test

import (
	"runtime/metrics"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/gcbusy"
	"github.com/livekv/livekv/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestStart_CollectsUntilStopped(t *testing.T) {
	start := numGC()
	stop := gcbusy.Start()
	// A collection takes milliseconds, longer on a loaded machine: wait
	// for three, for up to ten seconds.
	deadline := time.Now().Add(10 * time.Second)
	for numGC() < start+3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := numGC() - start
	stop() // and goleak checks that its goroutine has ended
	if got < 3 {
		t.Fatalf("got %d collections in ten seconds, want at least 3", got)
	}
}

// numGC returns how many collections have completed.
func numGC() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
