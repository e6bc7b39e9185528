// Package gcbusy keeps the garbage collector marking, for benchmarks of
// code whose cost changes while it does (write barriers are on only then),
// and tells a thread's processor time (ThreadCPU), which sets that code's
// own cost apart from the work the collector does on its processor.
package gcbusy

import "runtime"

// Start runs collections back to back on a goroutine of its own until the
// function it returns is called; that function waits for the goroutine to
// end.
func Start() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
				runtime.GC()
			}
		}
	}()
	return func() { close(quit); <-done }
}
