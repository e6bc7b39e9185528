package wal

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/livekv/livekv/vfs"
)

// The log's codec is unexported; wal's black-box tests and fuzz targets
// (package wal_test) reach it under its old exported names.

var (
	AppendRecord        = appendRecord
	DecodeRecord        = decodeRecord
	Scan                = scan
	AppendTx            = appendTx
	DecodeTx            = decodeTx
	CheckTx             = checkTx
	BorrowTx            = borrowTx
	AppendSegmentHeader = appendSegmentHeader
	DecodeSegmentHeader = decodeSegmentHeader
	AppendItem          = appendItem
	ReadItem            = readItem
)

// ScanFile is scanFile over a file holding b, from offset base; f, if
// not nil, stands between it and the file (to make its reads fail). The
// body's records start at revision 1.
func ScanFile(b []byte, base int64, version byte, max int, f func(vfs.Reader) vfs.Reader, fn func(payload []byte) error) (ScanResult, error) {
	fs := vfs.NewMemFS()
	fs.WriteFile("seg", b)
	r, err := fs.OpenRead("seg")
	if err != nil {
		return ScanResult{}, err
	}
	defer r.Close()
	if f != nil {
		r = f(r)
	}
	return scanFile(r, base, version, max, 0, fn)
}

// ReadSnapshot is readSnapshot of the file b, with values of their own.
func ReadSnapshot(b []byte, max int, fn func(*Item) error) (int64, error) {
	return readSnapshot(bytes.NewReader(b), max, fn, false)
}

// ReadSnapshotBorrow is readSnapshot of the file b.
func ReadSnapshotBorrow(b []byte, max int, fn func(*Item) error, borrow bool) (int64, error) {
	return readSnapshot(bytes.NewReader(b), max, fn, borrow)
}

// SnapshotCount is readSnapshotCount of the file b: it reads b's end.
func SnapshotCount(b []byte, max int) (int, bool) {
	return readSnapshotCount(bytesFile{bytes.NewReader(b)}, max)
}

// SnapshotCountOfAll is snapshotCount given the whole file b.
func SnapshotCountOfAll(b []byte, max int) (int, bool) {
	return snapshotCount(b, int64(len(b)), max)
}

type bytesFile struct{ *bytes.Reader }

func (bytesFile) Close() error { return nil }

type ScanResult = scanResult

const (
	RecordHeaderSize        = recordHeaderSize
	SegmentHeaderSize       = segmentHeaderSize
	SegmentVersion          = segmentVersion
	SegmentVersionNoTrailer = segmentVersionNoTrailer

	TypeTx       = typeTx
	TypeItem     = typeItem
	TypeSnapshot = typeSnapshot
)

// CheckSegment is checkSegment of the segment file b: the offsets and
// payloads of the records it gives fn, and what it returns.
func CheckSegment(b []byte, max int) (offs []int64, payloads [][]byte, size int64, version byte, err error) {
	fs := vfs.NewMemFS()
	fs.WriteFile("seg", b)
	l := &Log{opts: (&Options{FS: fs, MaxRecord: max}).withDefaults()}
	size, version, err = l.checkSegment("seg", func(_ byte, off int64, p []byte) error {
		offs, payloads = append(offs, off), append(payloads, slices.Clone(p))
		return nil
	})
	return offs, payloads, size, version, err
}

// HistoryCut feeds historyCut records at revisions first, first+1... with
// events[i] events each, the record at offset 100*rev, after a reset if
// resetAt > 0 (before the record at index resetAt), and returns the cut
// and the offset it gives for the record after it.
func HistoryCut(first int64, events []int, keep, resetAt int) (cut, off int64) {
	c := historyCut{keep: keep}
	for i, n := range events {
		if i == resetAt && i > 0 {
			c.reset()
		}
		rev := first + int64(i)
		c.add(txEvents{rev: rev, events: n, off: 100 * rev})
	}
	return c.cut, c.offAfter()
}

// DecodeItem decodes an item payload (readItem) into an Item of its own.
func DecodeItem(b []byte, borrow bool) (Item, error) {
	var it Item
	err := readItem(b, borrow, &it)
	return it, err
}

// WriteSnapshotUnchecked writes a snapshot as writeSnapshot does, but
// without checking its items: a snapshot that the reader refuses.
func WriteSnapshotUnchecked(rev int64, items []*Item) []byte {
	b := appendHeader(nil, snapshotMagic, snapshotVersion, rev)
	for _, it := range items {
		b = appendRecord(b, typeItem, appendItem(nil, it))
	}
	return appendRecord(b, typeSnapshot, binary.AppendUvarint(nil, uint64(len(items))))
}
