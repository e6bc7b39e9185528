package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// errSharingViolation is Windows' ERROR_SHARING_VIOLATION, which package
// syscall does not name.
const errSharingViolation syscall.Errno = 32

// lockFile opens name with a share mode of 0, so that no other handle, in
// this process or another, can open it until this one is closed: a second
// Open fails with a sharing violation, which is ErrLocked. This is how
// pebble and goleveldb lock on Windows, and it needs only package syscall
// (LockFileEx would need golang.org/x/sys/windows or a DLL lookup, and an
// explicit unlock, since Windows may release the lock of a closed handle
// late). The cost: any program that has the empty LOCK file open, a virus
// scanner say, also reads as ErrLocked while it does.
func lockFile(name string) (io.Closer, error) {
	p, err := syscall.UTF16PtrFromString(name)
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		if errors.Is(err, errSharingViolation) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, filepath.Dir(name))
		}
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	return os.NewFile(uintptr(h), name), nil
}
