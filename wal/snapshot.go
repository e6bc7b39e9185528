package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/livekv/livekv/vfs"
)

// Snapshot file layout; see the package comment.
const (
	snapshotMagic   = "LIVEKVS"
	snapshotVersion = 1
)

// Item is one key's state in a snapshot. The reader of a snapshot
// refuses one that breaks these rules, so its writers (Log.Snapshot,
// WriteSnapshot) refuse it too, with an error that wraps ErrInvalid: Key
// is not empty and above the key of the item before it; CreateRevision is
// at least 1, Revision at least CreateRevision and at most the
// snapshot's revision; Version is at least 1. They refuse a nil *Item,
// and a nil sequence of them, with ErrInvalid too, and an item whose
// record is longer than its reader takes with an error that wraps
// ErrTooLarge (see each).
type Item struct {
	Key            string
	Value          string
	Revision       int64 // of the key's last change
	CreateRevision int64
	Version        int64
	Expires        int64 // unix ns; 0 means never
}

// snapshotChunk is how much a snapshot encoder buffers between writes.
const snapshotChunk = 1 << 20

// maxFrame is the longest payload that a record's 32-bit length holds: no
// reader takes a longer one, whatever its limit.
const maxFrame int = min(math.MaxUint32, math.MaxInt)

// writeSnapshot writes the snapshot of the state at revision rev, holding
// items, to w. It returns the number of items written. A nil items, an
// item that breaks Item's rules or a nil one stops it with an error that
// wraps ErrInvalid, and an item whose record's payload is over max bytes
// (a reader's limit, at most maxFrame) with one that wraps ErrTooLarge;
// what it wrote to w before is no snapshot.
func writeSnapshot(w io.Writer, rev int64, max int, items iter.Seq[*Item]) (int64, error) {
	if items == nil {
		// Not the empty state, which is a sequence that yields nothing.
		return 0, fmt.Errorf("%w: nil snapshot items", ErrInvalid)
	}
	buf := appendHeader(make([]byte, 0, snapshotChunk+4096), snapshotMagic, snapshotVersion, rev)
	var n int64
	var err error
	var payload, last []byte // last: the previous item's key, copied: items may reuse theirs
	for it := range items {
		if err := checkItem(it, n > 0, string(last), rev); err != nil {
			return n, err
		}
		last = append(last[:0], it.Key...)
		payload = appendItem(payload[:0], it)
		if len(payload) > max {
			// The reader would refuse it (decodeFrame), and a longer
			// one than maxFrame does not even frame.
			return n, fmt.Errorf("%w: snapshot item %.64q, a record of %d bytes, limit %d", ErrTooLarge, it.Key, len(payload), max)
		}
		buf = appendRecord(buf, typeItem, payload)
		n++
		if len(buf) >= snapshotChunk {
			if _, err = w.Write(buf); err != nil {
				return n, err
			}
			buf = buf[:0]
		}
	}
	// The trailer fits: a count takes 1 byte, and more than the 7 that the
	// smallest item takes only past 2^49 items.
	buf = appendRecord(buf, typeSnapshot, binary.AppendUvarint(nil, uint64(n)))
	_, err = w.Write(buf)
	return n, err
}

// checkItem returns an error wrapping ErrInvalid if it is nil or breaks
// Item's rules, which readItem and ReadSnapshotFrom enforce, in a snapshot
// at rev; prev is the key of the item before it, if there is one (after).
func checkItem(it *Item, after bool, prev string, rev int64) error {
	switch {
	case it == nil:
		return fmt.Errorf("%w: nil snapshot item", ErrInvalid)
	case it.Key == "":
		return fmt.Errorf("%w: snapshot item with an empty key", ErrInvalid)
	case after && it.Key <= prev:
		return fmt.Errorf("%w: snapshot item %q after %q", ErrInvalid, it.Key, prev)
	case it.CreateRevision < 1 || it.Revision < it.CreateRevision:
		return fmt.Errorf("%w: snapshot item %q has revision %d, created at %d", ErrInvalid, it.Key, it.Revision, it.CreateRevision)
	case it.Revision > rev:
		return fmt.Errorf("%w: snapshot item %q has revision %d, after the snapshot's %d", ErrInvalid, it.Key, it.Revision, rev)
	case it.Version < 1:
		return fmt.Errorf("%w: snapshot item %q has version %d", ErrInvalid, it.Key, it.Version)
	}
	return nil
}

// appendItem appends an item's payload encoding to dst:
//
//	key len | key | value len | value | revision | create revision | version | expires
func appendItem(dst []byte, it *Item) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(it.Key)))
	dst = append(dst, it.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(it.Value)))
	dst = append(dst, it.Value...)
	dst = binary.AppendUvarint(dst, uint64(it.Revision))
	dst = binary.AppendUvarint(dst, uint64(it.CreateRevision))
	dst = binary.AppendUvarint(dst, uint64(it.Version))
	return binary.AppendVarint(dst, it.Expires)
}

// readItem decodes an item payload into it, which Open's load of a
// snapshot uses again for every item. Damage is ErrCorrupt, and leaves it
// zero. With borrow set, the Key and Value point into b.
func readItem(b []byte, borrow bool, it *Item) error {
	d := decoder{b: b, what: "snapshot item"}
	if borrow {
		it.Key = borrowString(d.bytes())
		it.Value = borrowString(d.bytes())
	} else {
		it.Key = d.str()
		it.Value = d.str()
	}
	it.Revision = int64(d.uvarint())
	it.CreateRevision = int64(d.uvarint())
	it.Version = int64(d.uvarint())
	it.Expires = d.varint()
	switch {
	case d.err != nil:
	case it.Key == "":
		d.fail("empty key")
	case it.CreateRevision < 1 || it.Revision < it.CreateRevision:
		d.fail("revision %d created at %d", it.Revision, it.CreateRevision)
	case it.Version < 1:
		d.fail("version %d", it.Version)
	case len(d.b) != 0:
		d.fail("%d bytes after the item", len(d.b))
	}
	if d.err != nil {
		*it = Item{}
		return d.err
	}
	return nil
}

// WriteSnapshot writes a snapshot of the state at revision rev to w, in
// the format of the log's snapshot files (see the package comment): the
// same bytes a Log.Snapshot at rev would put in snap/<rev>.snap. items
// must not be nil and must yield the keys in ascending order, none
// changed after rev, each by Item's rules; a nil items, or an item that
// breaks them or is nil, stops the write with an error that wraps
// ErrInvalid, and what was written to w is no snapshot. WriteSnapshot
// does not know the limit its reader will read with (ReadSnapshotFrom's
// maxRecord, Options.MaxRecord): it refuses, with an error that wraps
// ErrTooLarge, only an item whose record's payload is longer than any
// reader takes, 4 GiB - 1 bytes (a record's length is 32 bits); one over
// DefaultMaxRecord reads only with a limit as large. It returns the
// number of items written. Revision 0 is the empty state: a
// stream with no items, which ReadSnapshotFrom accepts but the log never
// keeps as a file.
func WriteSnapshot(w io.Writer, rev int64, items iter.Seq[*Item]) (int64, error) {
	if rev < 0 {
		return 0, fmt.Errorf("wal: snapshot at negative revision %d", rev)
	}
	return writeSnapshot(w, rev, maxFrame, items)
}

// ReadSnapshotFrom reads a snapshot that WriteSnapshot (or Log.Snapshot)
// wrote from r, streamed: it holds one record at a time, never the whole
// snapshot. It calls rp.Snapshot with the revision once the header is
// read, then rp.Item with each item in key order (the *Item is reused:
// copy what you keep), and returns the revision; rp.History and rp.Tx
// are not used, and a nil func skips its part. Items larger than
// maxRecord bytes (0: DefaultMaxRecord) are damage. Any damage, a stream
// cut short included, is an error that wraps ErrCorrupt and names the
// offset; so is an item not above the one before it in key order, one
// changed after the snapshot's revision, or a byte after the trailer. An
// error from r other than io.EOF is returned as it is, and so is an
// error from rp's funcs, which stops the read. ReadSnapshotFrom reads r
// to its end, to check that nothing follows the snapshot.
func ReadSnapshotFrom(r io.Reader, maxRecord int, rp Replay) (rev int64, err error) {
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecord
	}
	sr := recordReader{r: bufio.NewReaderSize(r, 64<<10)}
	hdr, err := sr.read(segmentHeaderSize)
	if err != nil {
		return 0, sr.fail(err, "snapshot header")
	}
	rev, _, err = decodeHeader(hdr, "snapshot", snapshotMagic, snapshotVersion, snapshotVersion, 0)
	if err != nil {
		return 0, err
	}
	if rp.Snapshot != nil {
		if err := rp.Snapshot(rev); err != nil {
			return 0, err
		}
	}
	var n uint64
	var last []byte // the previous item's key, copied: it may be borrowed
	var it Item
	for {
		off := sr.off
		rec, err := sr.next(maxRecord)
		if err != nil {
			return 0, sr.fail(err, fmt.Sprintf("snapshot record at offset %d", off))
		}
		typ, payload, _, err := decodeFrame(rec, maxRecord)
		if errors.Is(err, errTooLarge) {
			if err := sr.overLimit(rec, off, maxRecord, typeItem, typeSnapshot); err != nil {
				return 0, err
			}
		}
		if err != nil {
			return 0, fmt.Errorf("%w: snapshot record at offset %d: %v", ErrCorrupt, off, err)
		}
		switch typ {
		case typeItem:
			if err = readItem(payload, rp.Borrow, &it); err != nil {
				return 0, fmt.Errorf("%w at offset %d", err, off)
			}
			if n > 0 && it.Key <= string(last) {
				return 0, fmt.Errorf("%w: snapshot item %q at offset %d after %q", ErrCorrupt, it.Key, off, last)
			}
			if it.Revision > rev {
				return 0, fmt.Errorf("%w: snapshot item %q at offset %d has revision %d, after the snapshot's %d", ErrCorrupt, it.Key, off, it.Revision, rev)
			}
			if rp.Item != nil {
				if err := rp.Item(&it); err != nil {
					return 0, err
				}
			}
			last = append(last[:0], it.Key...)
			n++
		case typeSnapshot:
			count, k := binary.Uvarint(payload)
			if k <= 0 || k != len(payload) || count != n {
				return 0, fmt.Errorf("%w: snapshot trailer at offset %d does not match its %d items", ErrCorrupt, off, n)
			}
			extra, err := io.Copy(io.Discard, sr.r)
			if err != nil {
				return 0, err
			}
			if extra != 0 {
				return 0, fmt.Errorf("%w: %d bytes after the snapshot trailer", ErrCorrupt, extra)
			}
			return rev, nil
		default:
			return 0, fmt.Errorf("%w: record type %d at offset %d in a snapshot", ErrCorrupt, typ, off)
		}
	}
}

// minItemRecord is the fewest bytes an item's record takes: its framing,
// a one-byte key, and one byte for each length and number.
const minItemRecord = recordHeaderSize + 7

// snapshotCount reads ahead the item count in the trailer of a snapshot
// file of size bytes, of which tail holds the last (all of them, or
// enough for the trailer: snapshotTail), without reading the items. ok is
// false if the end of the file is not a well-formed trailer, or if its
// count is more items than the file can hold. The count is a hint:
// ReadSnapshotFrom checks it against the items.
func snapshotCount(tail []byte, size int64, max int) (n int, ok bool) {
	for k := 1; k <= binary.MaxVarintLen64; k++ {
		start := len(tail) - recordHeaderSize - k
		if start < 0 || size-int64(recordHeaderSize+k) < segmentHeaderSize {
			break
		}
		typ, payload, end, err := decodeFrame(tail[start:], max)
		if err != nil || typ != typeSnapshot || start+end != len(tail) {
			continue
		}
		count, m := binary.Uvarint(payload)
		if m != len(payload) || count > uint64(size/minItemRecord) {
			return 0, false
		}
		return int(count), true
	}
	return 0, false
}

// snapshotTail is the most of a snapshot's end that snapshotCount reads:
// the trailer's framing and the longest count.
const snapshotTail = recordHeaderSize + binary.MaxVarintLen64

// readSnapshotCount is snapshotCount for the snapshot file f: it reads
// only the file's end.
func readSnapshotCount(f vfs.Reader, max int) (n int, ok bool) {
	size := f.Size()
	tail := make([]byte, min(size, snapshotTail))
	if m, _ := f.ReadAt(tail, size-int64(len(tail))); m != len(tail) {
		return 0, false // io.ReaderAt: fewer bytes come with an error
	}
	return snapshotCount(tail, size, max)
}

// readSnapshot decodes the snapshot file r, calling fn with each item in
// order (its key and value borrowed if borrow is set), and returns the
// snapshot's revision: ReadSnapshotFrom over r, which must hold a
// revision of at least 1, as a snapshot file does. A
// snapshot is synced before it is given its name, so any damage, a cut
// included, is ErrCorrupt. An error from fn stops the read and is
// returned.
func readSnapshot(r io.Reader, max int, fn func(*Item) error, borrow bool) (rev int64, err error) {
	rev, err = ReadSnapshotFrom(r, max, Replay{Item: fn, Borrow: borrow})
	if err == nil && rev < 1 {
		return 0, fmt.Errorf("%w: snapshot revision %d", ErrCorrupt, rev)
	}
	return rev, err
}
