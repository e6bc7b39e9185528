package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestDisk_InMemoryFolderIsNamed: a folder on tmpfs or ramfs is told
// apart from one on a disk, and the report says so.
func TestDisk_InMemoryFolderIsNamed(t *testing.T) {
	for _, c := range []struct {
		magic    int64
		want     string
		inMemory bool
	}{
		{tmpfsMagic, "/tmp on tmpfs", true},
		{ramfsMagic, "/tmp on ramfs", true},
		{0xef53, "/tmp on ext2/3/4", false},
		{0x12345678, "/tmp on a file system of type 0x12345678", false},
		{int64(int32(-0x6edc97c2)), "/tmp on btrfs", false}, // 0x9123683e as a 32-bit statfs gives it
	} {
		desc, inMemory := describeDisk("/tmp", c.magic)
		if desc != c.want || inMemory != c.inMemory {
			t.Errorf("magic %#x: %q %v, want %q %v", c.magic, desc, inMemory, c.want, c.inMemory)
		}
	}
	if _, _, err := diskOf(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	r := Report{Machine: "m", Disk: "/tmp on tmpfs (memory: the durable figures measured no disk)", Started: time.Unix(0, 0), Finished: time.Unix(1, 0)}
	if md := r.markdown(); !strings.Contains(md, "stores in /tmp on tmpfs (memory") {
		t.Fatalf("the report does not say where the stores were:\n%s", md)
	}
}

// TestDisk_WarnsOfMemory: the suite warns when its folder is in memory,
// and not otherwise.
func TestDisk_WarnsOfMemory(t *testing.T) {
	for _, magic := range []int64{tmpfsMagic, 0xef53} {
		var w bytes.Buffer
		got := tempDisk(&w, "/x", func(dir string) (string, bool, error) {
			desc, inMemory := describeDisk(dir, magic)
			return desc, inMemory, nil
		})
		warned := strings.Contains(w.String(), "set TMPDIR")
		if inMemory := magic == tmpfsMagic; warned != inMemory || strings.Contains(got, "(memory") != inMemory {
			t.Errorf("magic %#x: tempDisk gave %q and warned %q", magic, got, w.String())
		}
	}
}
