//go:build !windows

package vfs

import "os"

// syncDir fsyncs the directory itself, which is what makes the creates,
// renames and removes in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
