package wal

import (
	"encoding/binary"
	"fmt"
	"io"
	"iter"
)

// Snapshot file layout; see the package comment.
const (
	snapshotMagic   = "LIVEKVS"
	snapshotVersion = 1
)

// Item is one key's state in a snapshot.
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

// writeSnapshot writes the snapshot of the state at revision rev, holding
// items, to w. It returns the number of items written.
func writeSnapshot(w io.Writer, rev int64, items iter.Seq[*Item]) (int64, error) {
	buf := appendHeader(make([]byte, 0, snapshotChunk+4096), snapshotMagic, snapshotVersion, rev)
	var n int64
	var err error
	var payload []byte
	for it := range items {
		payload = appendItem(payload[:0], it)
		buf = appendRecord(buf, typeItem, payload)
		n++
		if len(buf) >= snapshotChunk {
			if _, err = w.Write(buf); err != nil {
				return n, err
			}
			buf = buf[:0]
		}
	}
	buf = appendRecord(buf, typeSnapshot, binary.AppendUvarint(nil, uint64(n)))
	_, err = w.Write(buf)
	return n, err
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

// decodeItem decodes an item payload. Damage is ErrCorrupt.
func decodeItem(b []byte) (Item, error) {
	d := decoder{b: b, what: "snapshot item"}
	var it Item
	it.Key = d.str()
	it.Value = d.str()
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
		return Item{}, d.err
	}
	return it, nil
}

// readSnapshot decodes the snapshot b, calling fn with each item in order,
// and returns the snapshot's revision. Items larger than max are damage. A
// snapshot is synced before it is given its name, so any damage, a cut
// included, is ErrCorrupt; so is an item not above the one before it in
// key order, or one changed after the snapshot's revision. An error from
// fn stops the read and is returned.
func readSnapshot(b []byte, max int, fn func(*Item) error) (rev int64, err error) {
	rev, _, err = decodeHeader(b, "snapshot", snapshotMagic, snapshotVersion, snapshotVersion)
	if err != nil {
		return 0, err
	}
	off := segmentHeaderSize
	var n uint64
	var last string
	for {
		typ, payload, size, err := decodeFrame(b[off:], max)
		if err != nil {
			return 0, fmt.Errorf("%w: snapshot record at offset %d: %v", ErrCorrupt, off, err)
		}
		switch typ {
		case typeItem:
			it, err := decodeItem(payload)
			if err != nil {
				return 0, fmt.Errorf("%w at offset %d", err, off)
			}
			if n > 0 && it.Key <= last {
				return 0, fmt.Errorf("%w: snapshot item %q at offset %d after %q", ErrCorrupt, it.Key, off, last)
			}
			if it.Revision > rev {
				return 0, fmt.Errorf("%w: snapshot item %q at offset %d has revision %d, after the snapshot's %d", ErrCorrupt, it.Key, off, it.Revision, rev)
			}
			if err := fn(&it); err != nil {
				return 0, err
			}
			last = it.Key
			n++
		case typeSnapshot:
			count, k := binary.Uvarint(payload)
			if k <= 0 || k != len(payload) || count != n {
				return 0, fmt.Errorf("%w: snapshot trailer at offset %d does not match its %d items", ErrCorrupt, off, n)
			}
			if off+size != len(b) {
				return 0, fmt.Errorf("%w: %d bytes after the snapshot trailer", ErrCorrupt, len(b)-off-size)
			}
			return rev, nil
		default:
			return 0, fmt.Errorf("%w: record type %d at offset %d in a snapshot", ErrCorrupt, typ, off)
		}
		off += size
	}
}
