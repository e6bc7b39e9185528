//go:build !windows && (!unix || aix || solaris)

package vfs

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
)

// lockFile fails: on these systems (plan9, js and wasip1, and Solaris and
// AIX, whose package syscall has no flock) the log has no way to keep a
// second Open out, so it does not open a directory at all. A DB kept only
// in memory needs no lock and works.
func lockFile(name string) (io.Closer, error) {
	return nil, fmt.Errorf("vfs: locking %s: %w: no file locking on %s",
		filepath.Dir(name), errors.ErrUnsupported, runtime.GOOS)
}
