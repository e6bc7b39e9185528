package main

import (
	"fmt"
	"syscall"
)

// Magic numbers of statfs(2) for file systems held in memory.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// diskOf says what holds dir: the statfs(2) type, and whether it lives in
// memory (tmpfs, ramfs), where an fsync writes nothing and the durable
// figures would measure no disk.
func diskOf(dir string) (desc string, inMemory bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", false, err
	}
	desc, inMemory = describeDisk(dir, int64(st.Type))
	return desc, inMemory, nil
}

// fsNames names the common file systems' magic numbers.
var fsNames = map[uint32]string{
	0xef53:     "ext2/3/4",
	0x58465342: "xfs",
	0x9123683e: "btrfs",
	0x2fc12fc1: "zfs",
	0x794c7630: "overlayfs",
	0x6969:     "nfs",
	0x65735546: "fuse",
}

func describeDisk(dir string, magic int64) (desc string, inMemory bool) {
	m := uint32(magic)
	switch m {
	case tmpfsMagic:
		return dir + " on tmpfs", true
	case ramfsMagic:
		return dir + " on ramfs", true
	}
	if name, ok := fsNames[m]; ok {
		return dir + " on " + name, false
	}
	return fmt.Sprintf("%s on a file system of type %#x", dir, m), false
}
