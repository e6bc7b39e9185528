package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

// lastWrites are the last transactions of the logs the tail tests damage,
// by how many zero bytes their records end in, in a segment of the first
// format: an interrupted write that zeroed those bytes would leave the
// same record, so they decide which flips can be told from one there. In
// the current format every record ends in the trailer byte instead.
var lastWrites = []struct {
	what  string
	w     wal.Write
	zeros int
}{
	{"a put with an expiry", wal.Write{Kind: wal.KindPut, Key: "k", Value: "v", Expires: 1800000000000000000}, 0},
	{"a put", wal.Write{Kind: wal.KindPut, Key: "k", Value: "value"}, 1},
	{"a delete", wal.Write{Kind: wal.KindDelete, Key: "gone"}, 2},
	{"a value ending in zero bytes", wal.Write{Kind: wal.KindPut, Key: "k", Value: "v\x00\x00\x00\x00\x00"}, 6},
}

func lastTx(w wal.Write) *wal.Tx { return &wal.Tx{Revision: 5, Time: 5, Writes: []wal.Write{w}} }

// tailLog writes revisions 1 to 4, then lastTx(w), in a segment of the
// given version, and returns the name of the (only) segment, its bytes and
// where its last record starts. The log writes the current version; the
// first is built by hand, as an older build wrote it.
func tailLog(t *testing.T, w wal.Write, version byte) (name string, good []byte, lastStart int) {
	t.Helper()
	if version != wal.SegmentVersion {
		good = segmentHeader(version, 1)
		for rev := int64(1); rev <= 4; rev++ {
			good = wal.AppendRecord(good, wal.TypeTx, appendTx(nil, txN(rev), version))
		}
		lastStart = len(good)
		good = wal.AppendRecord(good, wal.TypeTx, appendTx(nil, lastTx(w), version))
		return "db/wal/00000000000000000001.log", good, lastStart
	}
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, nil)
	appendDurable(t, l, 1, 4)
	require.NoError(t, l.Append(lastTx(w)))
	require.NoError(t, l.WaitDurable(5))
	require.NoError(t, l.Close())
	name, good = onlyFile(t, fs, "db/wal")
	require.Equal(t, segmentHeader(wal.SegmentVersion, 1), good[:wal.SegmentHeaderSize])
	rec := wal.AppendRecord(nil, wal.TypeTx, wal.AppendTx(nil, lastTx(w)))
	lastStart = len(good) - len(rec)
	require.Equal(t, rec, good[lastStart:])
	return name, good, lastStart
}

// onlyFile returns the name and the bytes of the one file in dir.
func onlyFile(t *testing.T, fs *vfs.MemFS, dir string) (name string, b []byte) {
	t.Helper()
	names, err := fs.List(dir)
	require.NoError(t, err)
	require.Len(t, names, 1)
	name = dir + "/" + names[0]
	b, err = fs.ReadFile(name)
	require.NoError(t, err)
	return name, b
}

// openRevs opens the log on fs and returns the revisions it replays.
func openRevs(fs vfs.FS, o wal.Options) (*wal.Log, []int64, error) {
	var revs []int64
	o.FS = fs
	l, err := wal.Open("db", &o, wal.Replay{Tx: func(tx *wal.Tx) error {
		revs = append(revs, tx.Revision)
		return nil
	}})
	return l, revs, err
}

// trailingZeros returns how many zero bytes end b.
func trailingZeros(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == 0 {
		n++
	}
	return n
}

// flipLooksTorn is the documented limit of detection: a flip in the last
// record of a file is taken for an interrupted write when, afterwards, the
// zero bytes that end the file reach back into the record's header (its
// type byte and all its payload are zero, which no transaction record
// is), or the record as its length field reads it lies within the file
// and those zeros are its last four or more bytes. Four zero bytes can
// hide any checksum (some four bytes in their place always make it
// match), so a crash that zeroed them would have left the same bytes.
// With one to three, zerosMayHide, it is a matter of chance.
func flipLooksTorn(rec []byte, bit int) bool {
	return zerosInFlipped(rec, bit) >= 4
}

// zerosMayHide reports whether the flip leaves one to three zero bytes at
// the end of the record, which hide its checksum only by chance.
func zerosMayHide(rec []byte, bit int) bool {
	k := zerosInFlipped(rec, bit)
	return k >= 1 && k <= 3
}

// zerosInFlipped returns how many of the zero bytes that end rec after
// the flip lie in the record as its length field then reads it: 0 if its
// length runs past the end, whatever the zeros (the flipped bit is found),
// and "all of them" if they reach into the header.
func zerosInFlipped(rec []byte, bit int) int {
	b := slices.Clone(rec)
	b[bit/8] ^= 1 << (bit % 8)
	z := len(b) - trailingZeros(b) // the zeros from z on run to the end of the file
	if z < wal.RecordHeaderSize {
		return len(b)
	}
	end := uint64(wal.RecordHeaderSize) + uint64(binary.LittleEndian.Uint32(b))
	if end > uint64(len(b)) {
		return 0
	}
	return max(int(end)-z, 0)
}

// TestLog_TailDamage_BitFlips flips each bit of the last record of the
// log, one at a time: Open refuses the log with ErrCorrupt naming the
// segment and the record's offset, Check reports the same, and Open with
// Repair drops that record and keeps the four before it. In the current
// format that holds for every flip, also with zeros after the record (a
// crash that zero-filled space a later write had claimed). In the first
// format the only flips taken for a torn write are those flipLooksTorn
// names, in the record whose value ends in zero bytes; they are truncated
// like one.
func TestLog_TailDamage_BitFlips(t *testing.T) {
	for _, version := range versions {
		for _, lw := range lastWrites {
			name, good, lastStart := tailLog(t, lw.w, version)
			rec := good[lastStart:]
			pads := []int{0, 512}
			if version == wal.SegmentVersion {
				require.Zero(t, trailingZeros(rec), lw.what)
			} else {
				require.Equal(t, lw.zeros, trailingZeros(rec), lw.what)
				pads = pads[:1]
			}
			for _, pad := range pads {
				undetected := 0
				for bit := 0; bit < 8*len(rec); bit++ {
					what := fmt.Sprintf("version %d: %s: bit %d of the last record, %d zero bytes after", version, lw.what, bit, pad)
					b := append(slices.Clone(good), make([]byte, pad)...)
					b[lastStart+bit/8] ^= 1 << (bit % 8)
					fs := vfs.NewMemFS()
					fs.WriteFile(name, b)
					require.NoError(t, fs.MkdirAll("db/snap"))

					if version == wal.SegmentVersionNoTrailer && flipLooksTorn(rec, bit) {
						undetected++
						rep, err := wal.Check("db", &wal.Options{FS: fs})
						require.NoError(t, err, what)
						require.Equal(t, int64(len(rec)), rep.TornBytes, what)
						l, revs, err := openRevs(fs, wal.Options{})
						require.NoError(t, err, what)
						require.Equal(t, seq(1, 4), revs, what)
						require.NoError(t, l.Close())
						continue
					}

					_, _, err := openRevs(fs, wal.Options{})
					require.ErrorIs(t, err, wal.ErrCorrupt, what)
					require.Contains(t, err.Error(), name, what)
					require.Contains(t, err.Error(), fmt.Sprintf("offset %d", lastStart), what)

					_, err = wal.Check("db", &wal.Options{FS: fs})
					require.ErrorIs(t, err, wal.ErrCorrupt, what)
					require.Contains(t, err.Error(), fmt.Sprintf("offset %d", lastStart), what)

					var logged []string
					l, revs, err := openRevs(fs, wal.Options{Repair: true, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
					require.NoError(t, err, what)
					require.Equal(t, seq(1, 4), revs, what)
					require.Len(t, logged, 1, what)
					require.Contains(t, logged[0], "damage", what)
					appendDurable(t, l, 5, 6)
					require.NoError(t, l.Close())
					l, revs, err = openRevs(fs, wal.Options{})
					require.NoError(t, err, what)
					require.Equal(t, seq(1, 6), revs, what)
					require.NoError(t, l.Close())
				}
				switch {
				case version == wal.SegmentVersion || lw.zeros < 4:
					require.Zero(t, undetected, lw.what)
				default:
					require.Positive(t, undetected, lw.what)
				}
				t.Logf("version %d: %s, %d zero bytes after: %d of %d flips taken for a torn write", version, lw.what, pad, undetected, 8*len(rec))
			}
		}
	}
}

// TestLog_TornTail_Interrupted cuts the last record at every byte and
// pads what is left with zeros (none, up to the record's length, or a
// sector beyond): what an interrupted write leaves when the file's length
// was or was not updated and its data did not reach the disk. Always a
// torn tail, truncated: Open keeps the records before, and the log
// appends and reopens. In either format.
func TestLog_TornTail_Interrupted(t *testing.T) {
	for _, version := range versions {
		for _, lw := range lastWrites {
			name, good, lastStart := tailLog(t, lw.w, version)
			for cut := lastStart; cut <= len(good); cut++ {
				for _, pad := range []int{0, len(good) - cut, len(good) - cut + 512} {
					what := fmt.Sprintf("version %d: %s: cut at %d, %d zero bytes after", version, lw.what, cut, pad)
					b := append(slices.Clone(good[:cut]), make([]byte, pad)...)
					want := seq(1, 4)
					if len(b) >= len(good) && bytes.Equal(b[:len(good)], good) {
						want = seq(1, 5) // the zeros cut off were the record's own
					}
					fs := vfs.NewMemFS()
					fs.WriteFile(name, b)
					require.NoError(t, fs.MkdirAll("db/snap"))
					rep, err := wal.Check("db", &wal.Options{FS: fs})
					require.NoError(t, err, what)
					if bytes.Equal(b, good) || bytes.Equal(b, good[:lastStart]) {
						require.Zero(t, rep.TornBytes, what) // a whole log, the last record or not
					} else {
						require.Positive(t, rep.TornBytes, what)
					}

					l, revs, err := openRevs(fs, wal.Options{})
					require.NoError(t, err, what)
					require.Equal(t, want, revs, what)
					next := int64(len(want)) + 1
					appendDurable(t, l, next, next+1)
					require.NoError(t, l.Close())
					l, revs, err = openRevs(fs, wal.Options{})
					require.NoError(t, err, what)
					require.Equal(t, seq(1, next+1), revs, what)
					require.NoError(t, l.Close())
				}
			}
		}
	}
}

// TestLog_TornTail_ValueHoldsARecord: a crash while the log writes a
// value that holds a whole record of its own (a copy of a log stored as a
// value) can leave that record whole after the cut-short one. When its
// revision is not after the last good record's, it cannot be one the log
// wrote later: the tail is torn, Open truncates it and keeps records 1 to
// 4, and Check finds no damage. When it is later, it could be a record
// written after a damaged one, and Open refuses the log, as it would any
// damage; Repair then keeps 1 to 4.
func TestLog_TornTail_ValueHoldsARecord(t *testing.T) {
	for _, version := range versions {
		for _, inner := range []int64{1, 4, 5, 9} {
			rec := wal.AppendRecord(nil, wal.TypeTx, appendTx(nil, txN(inner), version))
			w := wal.Write{Kind: wal.KindPut, Key: "copy", Value: "log:" + string(rec) + ":end"}
			name, good, lastStart := tailLog(t, w, version)
			at := lastStart + bytes.Index(good[lastStart:], rec)
			require.Greater(t, at, lastStart)
			for cut := lastStart; cut <= len(good); cut++ {
				for _, pad := range []int{0, len(good) - cut} {
					what := fmt.Sprintf("version %d: a record of revision %d in the value: cut at %d, %d zero bytes after", version, inner, cut, pad)
					b := append(slices.Clone(good[:cut]), make([]byte, pad)...)
					fs := vfs.NewMemFS()
					fs.WriteFile(name, b)
					require.NoError(t, fs.MkdirAll("db/snap"))
					whole := len(b) >= len(good) && bytes.Equal(b[:len(good)], good) // the zeros cut off were the record's own
					inside := len(b) >= at+len(rec) && bytes.Equal(b[at:at+len(rec)], rec)
					if !whole && inside && inner > 4 {
						_, err := wal.Check("db", &wal.Options{FS: fs})
						require.ErrorIs(t, err, wal.ErrCorrupt, what)
						_, _, err = openRevs(fs, wal.Options{})
						require.ErrorIs(t, err, wal.ErrCorrupt, what)
						require.ErrorContains(t, err, fmt.Sprintf("good record at offset %d", at), what)
						l, revs, err := openRevs(fs, wal.Options{Repair: true})
						require.NoError(t, err, what)
						require.Equal(t, seq(1, 4), revs, what)
						require.NoError(t, l.Close())
						continue
					}
					want := seq(1, 4)
					if whole {
						want = seq(1, 5)
					}
					rep, err := wal.Check("db", &wal.Options{FS: fs})
					require.NoError(t, err, what)
					require.Equal(t, len(b) != lastStart && !bytes.Equal(b, good), rep.TornBytes > 0, what)
					l, revs, err := openRevs(fs, wal.Options{})
					require.NoError(t, err, what)
					require.Equal(t, want, revs, what)
					require.NoError(t, l.Close())
				}
			}
		}
	}
}

// scanBody returns a segment body of records 1 to 3 and a last record
// holding payload, and where the last record starts, in a segment of the
// given version.
func scanBody(payload []byte, version byte) ([]byte, int) {
	b, _ := segmentV(3, version)
	return wal.AppendRecord(b, wal.TypeTx, payload), len(b)
}

// scanV scans a segment body of the given version with a record limit of
// 64 KiB, checking the count of records.
func scanV(t *testing.T, b []byte, version byte) (wal.ScanResult, error) {
	n := 0
	r, err := wal.Scan(b, 0, version, 1<<16, 0, func(byte, []byte) error { n++; return nil })
	require.Equal(t, n, r.Records)
	return r, err
}

// TestScan_TailDamage_BitFlips flips each bit of the last record of a
// segment body in the first format, for last records ending in 0 to 3
// zero bytes: always corruption at that record's offset. With three zero
// bytes a few flips cannot be told from an interrupted write that zeroed
// them, since some three bytes in their place make the checksum match:
// for each flip taken for a torn tail the test finds those bytes, so the
// miss is a real ambiguity, not the rule's.
func TestScan_TailDamage_BitFlips(t *testing.T) {
	for zeros := 0; zeros <= 3; zeros++ {
		payload := append(appendTx(nil, sampleTx(4), wal.SegmentVersionNoTrailer), 0xee)
		payload = append(payload, make([]byte, zeros)...)
		good, lastStart := scanBody(payload, wal.SegmentVersionNoTrailer)
		rec := good[lastStart:]
		torn := 0
		for bit := 0; bit < 8*len(rec); bit++ {
			b := slices.Clone(good)
			b[lastStart+bit/8] ^= 1 << (bit % 8)
			txs, r, err := scanAllV(b, wal.SegmentVersionNoTrailer)
			require.Len(t, txs, 3, "zeros %d bit %d", zeros, bit)
			require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good, "zeros %d bit %d", zeros, bit)
			if err == nil {
				torn++
				require.Equal(t, 3, zeros, "bit %d taken for a torn write", bit)
				require.True(t, r.Torn)
				require.True(t, zerosCanMatch(b[lastStart:], zeros, false), "bit %d taken for a torn write", bit)
				continue
			}
			require.ErrorIs(t, err, wal.ErrCorrupt, "zeros %d bit %d", zeros, bit)
			require.Contains(t, err.Error(), fmt.Sprintf("offset %d", wal.SegmentHeaderSize+lastStart))
		}
		t.Logf("%d zero bytes at the end: %d of %d flips taken for a torn write", zeros, torn, 8*len(rec))
	}
}

// TestScan_TailDamage_BitFlips_Trailer flips each bit of the last record
// of a segment body in the current format, whatever its last write, with
// and without zeros after it: always corruption at that record's offset,
// not one flip taken for a torn write.
func TestScan_TailDamage_BitFlips_Trailer(t *testing.T) {
	for _, lw := range lastWrites {
		good, lastStart := scanBody(wal.AppendTx(nil, lastTx(lw.w)), wal.SegmentVersion)
		rec := good[lastStart:]
		for _, pad := range []int{0, 1, 3, 4, 7, 512} {
			for bit := 0; bit < 8*len(rec); bit++ {
				b := append(slices.Clone(good), make([]byte, pad)...)
				b[lastStart+bit/8] ^= 1 << (bit % 8)
				txs, r, err := scanAll(b)
				what := fmt.Sprintf("%s, %d zero bytes after: bit %d", lw.what, pad, bit)
				require.Len(t, txs, 3, what)
				require.Equal(t, int64(wal.SegmentHeaderSize+lastStart), r.Good, what)
				require.ErrorIs(t, err, wal.ErrCorrupt, what)
				require.Contains(t, err.Error(), fmt.Sprintf("offset %d", wal.SegmentHeaderSize+lastStart), what)
			}
		}
	}
}

// zerosCanMatch reports, by trying them all, whether some k bytes in place
// of the k zero bytes that end the record rec make its checksum match;
// with trailer, only bytes whose last is the trailer byte 0xff.
func zerosCanMatch(rec []byte, k int, trailer bool) bool {
	want := binary.LittleEndian.Uint32(rec[4:])
	tab := crc32.MakeTable(crc32.Castagnoli)
	prefix := crc32.Checksum(rec[8:len(rec)-k], tab)
	tail := make([]byte, k)
	free := k
	if trailer {
		free--
		tail[free] = 0xff
	}
	for v := 0; v < 1<<(8*free); v++ {
		for i := range free {
			tail[i] = byte(v >> (8 * i))
		}
		if crc32.Update(prefix, tab, tail) == want {
			return true
		}
	}
	return false
}

// TestScan_ZeroedEnd_Checksum gives the last record a checksum that may or
// may not be reachable by replacing the k zero bytes that end it (in the
// current format, by bytes that end in the trailer): Scan takes it for a
// torn write exactly when it is (tried exhaustively for up to two free
// bytes), and always with four free bytes.
func TestScan_ZeroedEnd_Checksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tab := crc32.MakeTable(crc32.Castagnoli)
	for _, version := range versions {
		trailer := version == wal.SegmentVersion
		ks := []int{1, 2, 4}
		if trailer {
			ks = []int{1, 2, 3, 5}
		}
		for i := 0; i < 240; i++ {
			k := ks[i%len(ks)]
			payload := make([]byte, 1+rng.IntN(40))
			for j := range payload {
				payload[j] = byte(rng.IntN(255) + 1)
			}
			// A record of payload+k bytes whose checksum is that of some other
			// k bytes in place of its zeros (ending in the trailer, or, the
			// third kind, in another byte), or anything at all.
			kind := i / len(ks) % 3
			filler := make([]byte, k)
			for j := range filler {
				filler[j] = byte(rng.Uint32())
			}
			if trailer && kind == 0 {
				filler[k-1] = 0xff
			} else if trailer && kind == 2 {
				filler[k-1] = byte(rng.IntN(255))
			}
			sum := crc32.Checksum(append(append([]byte{wal.TypeTx}, payload...), filler...), tab)
			if kind == 1 {
				sum = rng.Uint32()
			}
			rec := wal.AppendRecord(nil, wal.TypeTx, append(payload, make([]byte, k)...))
			binary.LittleEndian.PutUint32(rec[4:], sum)
			body, _ := segmentV(3, version)
			b, lastStart := append(body, rec...), len(body)
			r, err := scanV(t, b, version)
			what := fmt.Sprintf("version %d, case %d", version, i)
			free := k // bytes in place of the zeros that may take any value
			if trailer {
				free--
			}
			if free < 4 && !zerosCanMatch(b[lastStart:], k, trailer) {
				require.ErrorIs(t, err, wal.ErrCorrupt, what)
				continue
			}
			require.NoError(t, err, what)
			require.True(t, r.Torn, what)
		}
	}
}

// TestScan_TailDamage_Length: a last record whose length was flipped so
// that it runs past the end of the file, even far past the record limit,
// or into zeros after it that run to the end, is damage, since clearing
// that bit gives a whole record with a good checksum; garbage that runs
// past the end is still a torn tail.
func TestScan_TailDamage_Length(t *testing.T) {
	for _, version := range versions {
		for _, pad := range []int{0, 4096} {
			good, lastStart := scanBody(appendTx(nil, sampleTx(4), version), version)
			good = append(good, make([]byte, pad)...)
			for bit := 0; bit < 32; bit++ {
				b := slices.Clone(good)
				length := binary.LittleEndian.Uint32(b[lastStart:])
				if length&(1<<bit) != 0 {
					continue // clearing a bit is a record that ends early, whole
				}
				binary.LittleEndian.PutUint32(b[lastStart:], length|1<<bit)
				_, _, err := scanAllV(b, version)
				what := fmt.Sprintf("version %d, %d zero bytes after: bit %d", version, pad, bit)
				require.ErrorIs(t, err, wal.ErrCorrupt, what)
				require.Contains(t, err.Error(), "length", what)
			}
			garbage := append(slices.Clone(good[:lastStart]), []byte(strings.Repeat("\x9c\x01garbage", 20))...)
			_, r, err := scanAllV(garbage, version)
			require.NoError(t, err)
			require.True(t, r.Torn)
		}
	}
}

// holdsRecord reports whether a whole good record starts anywhere in b:
// after a bad record, that makes it corruption whatever the bad one looks
// like.
func holdsRecord(b []byte) bool {
	for i := range b {
		if _, _, _, err := wal.DecodeRecord(b[i:], 1<<16); err == nil {
			return true
		}
	}
	return false
}

// FuzzScanTail builds a segment body whose last record holds payload (in
// the current format, payload and the trailer byte), then (1) cuts that
// record at cut and adds pad zero bytes, as an interrupted write leaves
// it: a torn tail, never corruption (unless a good record lies whole in
// what is left of it, which is corruption by the rule for a bad record
// with a good one after it); and (2) flips one bit of the whole record:
// corruption at its offset, except in the first format as flipLooksTorn
// and zerosMayHide say; in the current format also with pad zero bytes
// after the record.
func FuzzScanTail(f *testing.F) {
	tx := appendTx(nil, sampleTx(4), wal.SegmentVersionNoTrailer)
	f.Add(tx, uint16(0), uint16(0), uint16(0))
	f.Add(tx, uint16(40), uint16(3), uint16(100))
	f.Add(tx, uint16(60), uint16(600), uint16(5))    // a flipped length bit
	f.Add(tx, uint16(30), uint16(10000), uint16(28)) // a flipped length bit, far past the limit
	f.Add(tx, uint16(70), uint16(512), uint16(2))    // a flipped length bit, into zeros after the record
	f.Add([]byte("value\x00\x00\x00\x00\x00\x00"), uint16(12), uint16(6), uint16(80))
	f.Add([]byte{}, uint16(3), uint16(9), uint16(64))
	f.Add(wal.AppendRecord(nil, wal.TypeTx, tx), uint16(20), uint16(0), uint16(7)) // a record inside one
	f.Fuzz(func(t *testing.T, payload []byte, cut, pad, bit uint16) {
		if len(payload) > 4096 {
			return
		}
		for _, version := range versions {
			p := payload
			if version == wal.SegmentVersion {
				p = append(slices.Clone(payload), 0xff)
			}
			good, lastStart := scanBody(p, version)
			rec := good[lastStart:]

			b := append(slices.Clone(good[:lastStart+int(cut)%len(rec)]), make([]byte, int(pad)%1024)...)
			r, err := scanV(t, b, version)
			if err != nil {
				require.ErrorIs(t, err, wal.ErrCorrupt)
				require.True(t, holdsRecord(b[lastStart+1:]), "version %d: an interrupted write taken for damage: %v", version, err)
			}
			require.GreaterOrEqual(t, r.Records, 3)

			i := int(bit) % (8 * len(rec))
			b = slices.Clone(good)
			if version == wal.SegmentVersion {
				b = append(b, make([]byte, int(pad)%1024)...)
			}
			b[lastStart+i/8] ^= 1 << (i % 8)
			r, err = scanV(t, b, version)
			require.Equal(t, 3, r.Records)
			require.Equal(t, int64(lastStart), r.Good)
			switch {
			case holdsRecord(b[lastStart+1:]):
				require.ErrorIs(t, err, wal.ErrCorrupt)
			case version == wal.SegmentVersion:
				require.ErrorIs(t, err, wal.ErrCorrupt, "version %d: bit %d", version, i)
				require.Contains(t, err.Error(), fmt.Sprintf("offset %d", lastStart))
			case flipLooksTorn(rec, i):
				require.NoError(t, err, "bit %d", i)
				require.True(t, r.Torn)
			case zerosMayHide(rec, i):
			default:
				require.ErrorIs(t, err, wal.ErrCorrupt, "bit %d", i)
				require.Contains(t, err.Error(), fmt.Sprintf("offset %d", lastStart))
			}
		}
	})
}

// TestLog_RecordOverLimit: a whole record longer than the reader's
// MaxRecord was written by a log with a larger limit, and is not damage:
// Open, Open with Repair and Check all fail with a
// *wal.RecordOverLimitError, not ErrCorrupt, and leave the segment as it
// was, whether the record is the last or records follow it; with the
// larger limit every record is read. A flipped bit inside such a record
// is damage, as before.
func TestLog_RecordOverLimit(t *testing.T) {
	const small, large = 64 << 10, 1 << 20
	for _, last := range []bool{true, false} {
		t.Run(fmt.Sprintf("last=%v", last), func(t *testing.T) {
			fs := vfs.NewMemFS()
			l, _ := reopen(t, fs, &wal.Options{MaxRecord: large})
			appendDurable(t, l, 1, 2)
			value := strings.Repeat("v", 100<<10)
			require.NoError(t, l.Append(&wal.Tx{Revision: 3, Time: 3, Writes: []wal.Write{{Kind: wal.KindPut, Key: "big", Value: value}}}))
			require.NoError(t, l.WaitDurable(3))
			want := seq(1, 3)
			if !last {
				appendDurable(t, l, 4, 5)
				want = seq(1, 5)
			}
			require.NoError(t, l.Close())
			name, before := onlyFile(t, fs, "db/wal")

			for _, repair := range []bool{false, true} {
				over, err := openOverLimit(t, fs, small, repair)
				require.ErrorContains(t, err, name)
				require.Greater(t, over.Length, int64(len(value)))
				after, err := fs.ReadFile(name)
				require.NoError(t, err)
				require.Equal(t, before, after, "the segment after an open with repair %v", repair)
			}
			_, err := wal.Check("db", &wal.Options{FS: fs, MaxRecord: small})
			var over *wal.RecordOverLimitError
			require.ErrorAs(t, err, &over)

			l, revs, err := openRevs(fs, wal.Options{MaxRecord: large})
			require.NoError(t, err)
			require.Equal(t, want, revs)
			require.NoError(t, l.Close())

			b, err := fs.ReadFile(name)
			require.NoError(t, err)
			b[bytes.Index(b, []byte(value))+len(value)/2] ^= 1
			fs.WriteFile(name, b)
			_, _, err = openRevs(fs, wal.Options{MaxRecord: small})
			require.ErrorIs(t, err, wal.ErrCorrupt, "a flip in a record over the limit")
			require.False(t, errors.As(err, &over))
		})
	}
}

// openOverLimit opens the log on fs with MaxRecord limit, with Repair or
// not, and requires that it fail with a *wal.RecordOverLimitError of that
// limit, not with ErrCorrupt.
func openOverLimit(t *testing.T, fs *vfs.MemFS, limit int, repair bool) (*wal.RecordOverLimitError, error) {
	t.Helper()
	_, _, err := openRevs(fs, wal.Options{MaxRecord: limit, Repair: repair})
	var over *wal.RecordOverLimitError
	require.ErrorAs(t, err, &over, "repair %v", repair)
	require.NotErrorIs(t, err, wal.ErrCorrupt)
	require.Equal(t, limit, over.Limit)
	return over, err
}

// TestSnapshot_RecordOverLimit: an item of a snapshot whose record is
// longer than the reader's limit, but whole, makes Open and
// ReadSnapshotFrom fail with a *wal.RecordOverLimitError, not ErrCorrupt;
// with the larger limit it is read; a flipped bit in it is damage.
func TestSnapshot_RecordOverLimit(t *testing.T) {
	const small, large = 64 << 10, 1 << 20
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{MaxRecord: large})
	appendDurable(t, l, 1, 2)
	value := strings.Repeat("v", 100<<10)
	require.NoError(t, l.Snapshot(2, slices.Values([]*wal.Item{{Key: "big", Value: value, Revision: 2, CreateRevision: 2, Version: 1}})))
	require.NoError(t, l.Close())
	_, snap := onlyFile(t, fs, "db/snap")

	for _, repair := range []bool{false, true} {
		openOverLimit(t, fs, small, repair)
	}
	_, err := wal.ReadSnapshotFrom(bytes.NewReader(snap), small, wal.Replay{})
	var over *wal.RecordOverLimitError
	require.ErrorAs(t, err, &over)
	var got []string
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(snap), large, wal.Replay{Item: func(it *wal.Item) error {
		got = append(got, it.Key)
		return nil
	}})
	require.NoError(t, err)
	require.Equal(t, []string{"big"}, got)

	snap[bytes.Index(snap, []byte(value))+len(value)/2] ^= 1
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(snap), small, wal.Replay{})
	require.ErrorIs(t, err, wal.ErrCorrupt, "a flip in a record over the limit")
	_, err = wal.ReadSnapshotFrom(bytes.NewReader(snap[:len(snap)/2]), small, wal.Replay{})
	require.ErrorIs(t, err, wal.ErrCorrupt, "a record over the limit cut short")
}
