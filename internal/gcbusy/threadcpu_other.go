//go:build !linux

package gcbusy

import "time"

// ThreadCPU returns the processor time the calling OS thread has used,
// and true; on systems where it cannot tell, as here, false. See the
// Linux version for what it counts.
func ThreadCPU() (time.Duration, bool) { return 0, false }
