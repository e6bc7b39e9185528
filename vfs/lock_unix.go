// Solaris and AIX have no flock(2) in package syscall, only fcntl locks,
// which a second Open in the same process would not see; they get
// lock_generic.go.

//go:build unix && !aix && !solaris

package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile locks name with flock(2), which also excludes a second Open in
// the same process because each takes its own file descriptor.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, filepath.Dir(name))
		}
		return nil, err
	}
	return f, nil
}
