package wal

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Kinds of write in a transaction record. The numbers are the on-disk
// format: never renumber them.
const (
	KindPut       byte = 1
	KindPatch     byte = 2
	KindIncrement byte = 3
	KindDelete    byte = 4
	KindExpire    byte = 5
)

// kindCreated is set in a write's kind byte when the transaction created
// the key: it had none, or deleted it and wrote it again.
const kindCreated byte = 0x80

// Write is the post-image of one key after a transaction: its value (or
// its deletion) and its expiry.
type Write struct {
	Kind    byte
	Key     string
	Value   string // empty for KindDelete and KindExpire
	Expires int64  // unix ns; 0 means never
	// Created says the transaction created the key, even if it existed
	// before the transaction began (it was deleted and written again):
	// the post-image alone does not say so, and a replay must give the
	// key the same create revision and version.
	Created bool
}

// Tx is a committed transaction as the log keeps it.
type Tx struct {
	Revision int64
	Time     int64 // unix ns of the commit
	Writes   []Write
}

// txTrailer ends every transaction payload of a segmentVersion segment.
//
// Without it a payload ends with the last write's expiry, a zero byte when
// it has none (two for a delete, more when a value ends in zeros), and a
// whole record ending in zero bytes cannot always be told from a write
// that a crash cut short and zero-filled (see tail.go). With it no
// whole record ends in a zero byte, so one that does was cut short. 0xFF
// rather than the write count with its top bit set, which is 0x80 for a
// count that is a multiple of 128 and zero after one flipped bit: 0xFF
// takes eight.
const txTrailer byte = 0xFF

// appendTx appends tx's payload encoding, in the current segmentVersion,
// to dst.
func appendTx(dst []byte, tx *Tx) []byte {
	dst = binary.AppendUvarint(dst, uint64(tx.Revision))
	dst = binary.AppendVarint(dst, tx.Time)
	dst = binary.AppendUvarint(dst, uint64(len(tx.Writes)))
	for i := range tx.Writes {
		w := &tx.Writes[i]
		kind := w.Kind
		if w.Created {
			kind |= kindCreated
		}
		dst = append(dst, kind)
		dst = binary.AppendUvarint(dst, uint64(len(w.Key)))
		dst = append(dst, w.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(w.Value)))
		dst = append(dst, w.Value...)
		dst = binary.AppendVarint(dst, w.Expires)
	}
	return append(dst, txTrailer)
}

// decodeTx decodes a transaction payload of a segment of the given format
// version: segmentVersion, as appendTx writes it, or
// segmentVersionNoTrailer, without the trailer byte. Damage is
// ErrCorrupt; lengths are checked against the payload before anything is
// allocated.
func decodeTx(b []byte, version byte) (Tx, error) {
	var tx Tx
	if _, _, err := readTx(b, version, &tx, false); err != nil {
		return Tx{}, err
	}
	return tx, nil
}

// borrowTx decodes as decodeTx does, into tx, whose Writes it uses again:
// its keys and values point into b, not strings of their own
// (Replay.Borrow).
func borrowTx(b []byte, version byte, tx *Tx) error {
	_, _, err := readTx(b, version, tx, true)
	return err
}

// checkTx checks a transaction payload as decodeTx does, the same damage
// being the same error, without keeping anything: it returns the
// revision and the number of writes, and allocates nothing.
func checkTx(b []byte, version byte) (rev int64, writes int, err error) {
	return readTx(b, version, nil, false)
}

// minWriteSize is the fewest bytes a write of a transaction record takes:
// its kind, the key's length and at least one byte of key, the value's
// length and its expiry.
const minWriteSize = 5

// maxWritesAhead bounds the writes readTx makes room for before it has
// decoded them.
const maxWritesAhead = 1024

// readTx decodes a transaction payload into tx, or, if tx is nil, only
// checks it; it returns the revision and the number of writes. If borrow,
// tx's Writes are used again and its keys and values point into b.
func readTx(b []byte, version byte, tx *Tx, borrow bool) (rev int64, writes int, err error) {
	d := decoder{b: b, what: "transaction record"}
	switch version {
	case segmentVersionNoTrailer:
	case segmentVersion:
		if len(b) == 0 || b[len(b)-1] != txTrailer {
			d.fail("no trailer byte")
		} else {
			d.b = b[:len(b)-1]
		}
	default:
		d.fail("format version %d", version)
	}
	rev = int64(d.uvarint())
	at := d.varint()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b))/minWriteSize {
		d.fail("write count %d over the payload", n)
	}
	if d.err == nil && rev < 1 {
		d.fail("revision %d", rev)
	}
	if d.err == nil && tx != nil {
		tx.Revision, tx.Time = rev, at
		if borrow && uint64(cap(tx.Writes)) >= n {
			// What is left of the last record's writes points into the
			// reader's buffer, or at a callee's copy: nothing to clear.
			tx.Writes = tx.Writes[:0]
		} else {
			// Room for the writes the record claims, up to a bound: a
			// damaged count that passes the check above would
			// otherwise cost some 11 times the record's size before
			// the damage shows; more room comes as writes decode.
			tx.Writes = make([]Write, 0, min(n, maxWritesAhead))
		}
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		kind := d.byte()
		key := d.bytes()
		value := d.bytes()
		expires := d.varint()
		created, kind := kind&kindCreated != 0, kind&^kindCreated
		if d.err == nil && (kind < KindPut || kind > KindExpire) {
			d.fail("write kind %d", kind)
		}
		if d.err == nil && len(key) == 0 {
			d.fail("empty key")
		}
		switch {
		case tx == nil:
		case borrow:
			tx.Writes = append(tx.Writes, Write{Kind: kind, Created: created, Key: borrowString(key),
				Value: borrowString(value), Expires: expires})
		default:
			tx.Writes = append(tx.Writes, Write{Kind: kind, Created: created, Key: string(key), Value: string(value), Expires: expires})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the last write", len(d.b))
	}
	if d.err != nil {
		return 0, 0, d.err
	}
	return rev, int(n), nil
}

// borrowString returns a string of b's bytes, pointing into b: "" if b is
// empty, never a string of no bytes that still points into b, which a
// callee would keep without a thought (an empty value is not copied) and
// with it the whole buffer.
func borrowString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

type decoder struct {
	b    []byte
	what string // what is decoded, for errors
	err  error
}

// fail records the first error; what is left to decode is dropped, so
// that every read after it finds nothing and returns zero.
func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, d.what, fmt.Sprintf(format, args...))
	}
	d.b = nil
}

// uvarint decodes as binary.Uvarint does. Most of what a record holds
// (lengths, versions, revisions below 2M) takes one to three bytes, read
// here without a loop.
func (d *decoder) uvarint() uint64 {
	b := d.b
	switch {
	case len(b) > 0 && b[0] < 0x80:
		d.b = b[1:]
		return uint64(b[0])
	case len(b) > 1 && b[1] < 0x80:
		d.b = b[2:]
		return uint64(b[0]&0x7f) | uint64(b[1])<<7
	case len(b) > 2 && b[2] < 0x80: // b[0] and b[1] have their high bit set
		d.b = b[3:]
		return uint64(b[0]&0x7f) | uint64(b[1]&0x7f)<<7 | uint64(b[2])<<14
	}
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = b[n:]
	return v
}

// varint decodes as binary.Varint does: a zigzag uvarint.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("cut short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	return string(d.bytes())
}

// bytes reads a length-prefixed string and returns its bytes, part of
// the payload: nil if there is damage.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes over the payload", n)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// AppendTxRecord appends tx to dst as one framed record, as the log
// writes it to a segment: the length, a CRC-32C of the type and payload,
// the type and the transaction payload (see the package comment).
// Records appended one after another can be read back in turn with
// DecodeTxRecord; a replicated log ships them so.
func AppendTxRecord(dst []byte, tx *Tx) []byte {
	start := len(dst)
	dst = appendRecord(dst, typeTx, nil)
	dst = appendTx(dst, tx)
	return reframe(dst, start)
}

// DecodeTxRecord decodes the framed transaction record at the start of b,
// as AppendTxRecord wrote it, and returns it with the number of bytes it
// took. The transaction's strings are copies: b may be reused. Any
// damage, a record cut short included, is an error that wraps
// ErrCorrupt.
func DecodeTxRecord(b []byte) (tx *Tx, n int, err error) {
	_, payload, n, err := decodeRecord(b, len(b))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: transaction record: %v", ErrCorrupt, err)
	}
	t, err := decodeTx(payload, segmentVersion)
	if err != nil {
		return nil, 0, err
	}
	return &t, n, nil
}
