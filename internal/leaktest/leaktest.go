// Package leaktest fails a package's tests when goroutines outlive them.
// Every package's TestMain calls Main, so that all of them check the same
// way and ignore the same goroutines, each for a reason written here.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// Main runs m's tests and, if they pass, fails the run when a goroutine
// they started is still running; see goleak.VerifyTestMain. opts add to
// Ignores for a package's own needs.
func Main(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(Ignores(), opts...)...)
}

// Ignores returns the goroutines that are no leak in any package, for
// callers that check with goleak directly.
func Ignores() []goleak.Option {
	return []goleak.Option{
		// regexp2, behind pattern's regexes and their match timeouts,
		// runs one clock goroutine for every timeout in the process and
		// stops it by itself about a second after the latest deadline:
		// no Close of ours reaches it, and tests end sooner than that.
		goleak.IgnoreAnyFunction("github.com/dlclark/regexp2.runClock"),
	}
}
