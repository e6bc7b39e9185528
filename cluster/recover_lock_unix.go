//go:build unix

package cluster

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// notLocked returns ErrNodeRunning if a BoltDB file is open, in this
// process or another: BoltDB holds an exclusive flock on it while open.
func notLocked(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%w: %s is locked", ErrNodeRunning, path)
	}
	if err != nil {
		return fmt.Errorf("cluster: lock %s: %w", path, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
