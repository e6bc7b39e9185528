package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/leaktest"
	"go.uber.org/goleak"
)

// TestMain turns transparent huge pages off, as the suite's main does,
// and fails the run if goroutines outlive it. buntdb's background
// goroutine notices Close only on its next tick, up to a second later, so
// goroutines get a few seconds to finish before they count as leaked
// (goleak alone waits less than half a second).
func TestMain(m *testing.M) {
	// The memory and recovery workloads run this binary again to
	// measure a run.
	if child, err := runChild(os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if err := noHugePages(); err != nil {
		fmt.Fprintln(os.Stderr, "transparent huge pages stay as the kernel has them (TestNoHugePages fails):", err)
	}
	code := m.Run()
	if code == 0 {
		var err error
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err = goleak.Find(leaktest.Ignores()...)
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
