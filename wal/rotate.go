package wal

import (
	"encoding/binary"
	"fmt"
	"path"
)

// write appends a group to the current segment, starting a new segment
// first if there is none or the current one is full; the new segment is
// named by the revision of the group's first record.
func (l *Log) write(group []byte) error {
	if l.seg == nil || l.segSize >= l.opts.SegmentSize {
		// The group's first record's payload starts with its revision:
		// no need to checksum and decode the whole record for it.
		rev, n := binary.Uvarint(group[min(recordHeaderSize, len(group)):])
		if n <= 0 {
			return fmt.Errorf("%w: a group whose first record has no revision", ErrCorrupt)
		}
		if err := l.rotate(int64(rev)); err != nil {
			return err
		}
	}
	n, err := l.seg.Write(group)
	l.segSize += int64(n)
	l.mu.Lock()
	l.mu.segments[len(l.mu.segments)-1].size += int64(n)
	l.mu.stats.Bytes += int64(n)
	l.written.Add(int64(n))
	l.mu.Unlock()
	return err
}

// rotate syncs and closes the current segment and starts one whose first
// record has revision first: header written and synced, directory synced.
func (l *Log) rotate(first int64) error {
	if l.seg != nil {
		if err := l.sync(); err != nil {
			return err
		}
		l.closeSegment()
	}
	name := path.Join(l.segDir(), segmentName(first))
	f, err := l.opts.FS.Create(name)
	if err != nil {
		return err
	}
	l.seg, l.segSize, l.segSynced, l.segListed = f, 0, 0, false
	hdr := appendSegmentHeader(nil, first)
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	l.segSize = int64(len(hdr))
	if err := l.sync(); err != nil {
		return err
	}
	if err := l.opts.FS.SyncDir(l.segDir()); err != nil {
		return err
	}
	l.mu.Lock()
	l.mu.segments = append(l.mu.segments, segment{first: first, size: int64(len(hdr))})
	l.mu.stats.Bytes += int64(len(hdr))
	l.mu.Unlock()
	l.segListed = true
	return nil
}

func (l *Log) closeSegment() {
	if l.seg != nil {
		l.seg.Close()
		l.seg = nil
	}
}
