package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"github.com/livekv/livekv/vfs"
)

// Record types.
const (
	typeTx       byte = 1 // in a segment: a committed transaction
	typeItem     byte = 2 // in a snapshot: one key
	typeSnapshot byte = 3 // in a snapshot: the last record, with the count
)

// recordHeaderSize is the size of a record's framing.
const recordHeaderSize = 9

// DefaultMaxRecord is the largest payload accepted by default: larger
// lengths are damage, never an allocation.
const DefaultMaxRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the decoders.
var (
	// ErrCorrupt marks damage that is not a torn tail: a bad record with
	// good data after it, a last record whose bytes an interrupted write
	// cannot have left (a flipped bit, say), or a header or payload that
	// does not parse.
	ErrCorrupt = errors.New("wal: corrupt")

	errShort    = errors.New("wal: record cut short")
	errZero     = errors.New("wal: zeroed record")
	errChecksum = errors.New("wal: checksum mismatch")
	errTooLarge = errors.New("wal: record length over the limit")
	errType     = errors.New("wal: unknown record type")
)

// appendRecord appends the framed record to dst.
func appendRecord(dst []byte, typ byte, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, 0, 0, 0, 0, typ)
	dst = append(dst, payload...)
	// The type byte comes right before the payload: one checksum covers both.
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

// decodeRecord decodes the log record at the start of b, whose payload may
// be at most max bytes. It returns the type, the payload (a sub-slice of b)
// and the bytes consumed.
func decodeRecord(b []byte, max int) (typ byte, payload []byte, n int, err error) {
	typ, payload, n, err = decodeFrame(b, max)
	if err == nil && typ != typeTx {
		return 0, nil, 0, errType
	}
	return typ, payload, n, err
}

// decodeFrame decodes the framing of the record at the start of b, of any
// type.
func decodeFrame(b []byte, max int) (typ byte, payload []byte, n int, err error) {
	if len(b) < recordHeaderSize {
		if allZero(b) {
			return 0, nil, 0, errZero
		}
		return 0, nil, 0, errShort
	}
	length := binary.LittleEndian.Uint32(b[0:4])
	crc := binary.LittleEndian.Uint32(b[4:8])
	typ = b[8]
	if length == 0 && crc == 0 && typ == 0 {
		return 0, nil, 0, errZero
	}
	if uint64(length) > uint64(max) {
		return 0, nil, 0, errTooLarge
	}
	end := recordHeaderSize + int(length)
	if len(b) < end {
		return 0, nil, 0, errShort
	}
	payload = b[recordHeaderSize:end]
	if crc32.Checksum(b[8:end], castagnoli) != crc {
		return 0, nil, 0, errChecksum
	}
	return typ, payload, end, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanResult says how far a segment's records are good.
type scanResult struct {
	Records int   // good records read
	Good    int64 // offset just past the last good record
	Torn    bool  // bytes after Good are a torn tail, to be truncated
}

// revisionOf returns the revision that starts the transaction record's
// payload, or else if it has none.
func revisionOf(payload []byte, or int64) int64 {
	rev, n := binary.Uvarint(payload)
	if n <= 0 || rev > math.MaxInt64 {
		return or
	}
	return int64(rev)
}

// scanFile calls fn with the payload of each record of the body of the
// segment file f (the bytes after the header, from offset base to the
// file's end), in order, read in pieces (eachRecord): a payload is valid
// only until fn returns. version is the segment's format version, from
// its header, and prev the revision of the record before the body (the
// segment's first revision less one). It stops at the first bad record
// (badRecord). If a record of a later revision than the last good one
// follows, or nothing does but the bad record's bytes are not what an
// interrupted write leaves in a segment of that version (tail.go), it
// returns an error that wraps ErrCorrupt and names the offset; otherwise
// that is a torn tail (Torn). Either way Good is the bad record's offset,
// where to truncate. It reads what follows the bad record in pieces too
// (restDamage): however long a damaged segment, it never holds it whole.
// An error from fn stops the scan and is returned, as is an error
// reading f.
//
// A whole record after the bad one whose revision is not later than the
// last good record's is not one the log wrote after them (revisions go
// up): it is bytes of the bad record's value that frame as a record, as
// a value holding a copy of a log can, which the write that was cut
// short had got to the disk.
func scanFile(f vfs.Reader, base int64, version byte, maxRecord int, prev int64, fn func(payload []byte) error) (scanResult, error) {
	var r scanResult
	n, err := eachRecord(f, base, f.Size(), maxRecord, func(off int64, payload []byte) error {
		r.Good = off // where to truncate if fn fails
		if err := fn(payload); err != nil {
			return err
		}
		prev = revisionOf(payload, prev)
		return nil
	})
	r.Records = int(n)
	var bad *badRecord
	switch {
	case errors.As(err, &bad):
		r.Good = bad.off
		damage, err := restDamage(f, bad.off, f.Size(), version, maxRecord, prev)
		if err != nil {
			return r, err
		}
		r.Torn = damage == nil
		return r, damage
	case err != nil:
		return r, err
	}
	r.Good = max(f.Size(), base)
	return r, nil
}

// readFullAt reads len(b) bytes of f at offset off into b; a read that
// comes back short, the file having shrunk under it, is
// io.ErrUnexpectedEOF.
func readFullAt(f io.ReaderAt, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// eachRecord reads the records of the segment file f from offset from to
// offset to, in pieces, and calls fn with the offset and payload of each
// (the payload valid only until fn returns). It returns how many it read.
// A record it cannot take, cut short included, is a *badRecord, which
// wraps ErrCorrupt; any other error is the file's or fn's.
func eachRecord(f vfs.Reader, from, to int64, maxRecord int, fn func(off int64, payload []byte) error) (n int64, err error) {
	rr := recordReader{r: bufio.NewReaderSize(io.NewSectionReader(f, from, max(to-from, 0)), 64<<10), off: from}
	for rr.off < to {
		off := rr.off
		rec, err := rr.next(maxRecord)
		if err != nil {
			if err = rr.fail(err, fmt.Sprintf("record at offset %d", off)); errors.Is(err, ErrCorrupt) {
				err = &badRecord{off, err}
			}
			return n, err
		}
		_, payload, _, err := decodeRecord(rec, maxRecord)
		if errors.Is(err, errTooLarge) {
			if err := rr.overLimit(rec, off, maxRecord, typeTx); err != nil {
				return n, err
			}
		}
		if err != nil {
			return n, &badRecord{off, fmt.Errorf("%w: bad record at offset %d (%v)", ErrCorrupt, off, err)}
		}
		if err := fn(off, payload); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RecordOverLimitError is a record of a segment or a snapshot that is
// longer than the reader's limit (Options.MaxRecord, or ReadSnapshotFrom's
// maxRecord) but whole, its checksum good: what a log with a larger limit
// wrote, not damage. Open and Check fail with it, Repair included, which
// never truncates there: read it with a limit as large (the engine's
// comes from its MaxKeySize and MaxValueSize).
type RecordOverLimitError struct {
	Offset int64 // where the record starts in its file or stream
	Length int64 // its payload's bytes
	Limit  int   // the reader's MaxRecord
}

func (e *RecordOverLimitError) Error() string {
	return fmt.Sprintf("wal: a whole record of %d bytes at offset %d, over this reader's limit of %d: written with a larger limit", e.Length, e.Offset, e.Limit)
}

// overLimit tells a record over the limit that a larger limit wrote from
// damage: hdr is the header of the record at offset off, whose length is
// over max, which next read alone. It reads the record's payload from the
// stream, never whole, and returns a *RecordOverLimitError if the record
// is whole, of one of the types given, with a good checksum; else nil,
// which makes it damage. An error reading the stream, but its end, is
// returned as it is.
func (sr *recordReader) overLimit(hdr []byte, off int64, max int, types ...byte) error {
	length := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	crc := binary.LittleEndian.Uint32(hdr[4:8])
	if !slices.Contains(types, hdr[8]) {
		return nil
	}
	h := crc32.New(castagnoli)
	h.Write(hdr[8:9])
	n, err := io.CopyN(h, sr.r, length)
	sr.off += n
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	case h.Sum32() != crc:
		return nil
	}
	return &RecordOverLimitError{Offset: off, Length: length, Limit: max}
}

// badRecord is eachRecord's error for the record at off that it could not
// take: cut short, longer than the limit, or failing its checksum.
type badRecord struct {
	off int64
	err error // wraps ErrCorrupt
}

func (e *badRecord) Error() string { return e.err.Error() }
func (e *badRecord) Unwrap() error { return e.err }

// recordReader reads a stream of records (a snapshot, or a segment)
// record by record (next): in place in its buffered reader r, or,
// for a record larger than r's buffer, into buf.
type recordReader struct {
	r   *bufio.Reader
	buf []byte
	off int64 // bytes read
}

// read reads n more bytes onto the end of buf and returns them. It grows
// buf only as the bytes arrive, so a length that a damaged stream claims
// is never allocated before it is read.
func (sr *recordReader) read(n int) ([]byte, error) {
	start := len(sr.buf)
	for len(sr.buf)-start < n {
		chunk := min(n-(len(sr.buf)-start), 64<<10)
		sr.buf = slices.Grow(sr.buf, chunk)
		m, err := io.ReadFull(sr.r, sr.buf[len(sr.buf):len(sr.buf)+chunk])
		sr.buf = sr.buf[:len(sr.buf)+m]
		sr.off += int64(m)
		if err != nil {
			return nil, err
		}
	}
	return sr.buf[start:], nil
}

// next reads the next record, header and payload, and returns it: bytes
// that stay valid only until the next read. A record that fits in the
// reader's buffer is returned from there, not copied; a larger one is
// read into buf. Of a record whose length is over max, only the header is
// read and returned, which decodeFrame finds too large.
func (sr *recordReader) next(max int) ([]byte, error) {
	hdr, err := sr.r.Peek(recordHeaderSize)
	if err != nil {
		sr.off += int64(len(hdr))
		return nil, err
	}
	n := recordHeaderSize
	if length := binary.LittleEndian.Uint32(hdr); uint64(length) <= uint64(max) {
		n += int(length)
	}
	if n > sr.r.Size() {
		sr.buf = sr.buf[:0]
		return sr.read(n)
	}
	rec, err := sr.r.Peek(n)
	if err != nil {
		sr.off += int64(len(rec))
		return nil, err
	}
	sr.r.Discard(n) // never fails: the bytes are buffered
	sr.off += int64(n)
	return rec, nil
}

// fail turns a read error into the error to return: the stream's end is a
// cut, which is corruption; anything else is the reader's own failure.
func (sr *recordReader) fail(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %s: cut short at offset %d", ErrCorrupt, what, sr.off)
	}
	return err
}
