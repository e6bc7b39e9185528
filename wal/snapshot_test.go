package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

func sampleItems(n int) []*wal.Item {
	items := make([]*wal.Item, n)
	for i := range items {
		items[i] = &wal.Item{Key: fmt.Sprintf("k%04d", i), Value: fmt.Sprintf("value %d", i),
			Revision: int64(10 + i), CreateRevision: int64(1 + i), Version: int64(i%3 + 1), Expires: int64(i%2) * 1800000000000000000}
	}
	return items
}

func snapshotBytes(t testing.TB, rev int64, items []*wal.Item) []byte {
	var buf bytes.Buffer
	n, err := wal.WriteSnapshot(&buf, rev, slices.Values(items))
	require.NoError(t, err)
	require.Equal(t, int64(len(items)), n)
	return buf.Bytes()
}

func readSnapshot(b []byte) (int64, []*wal.Item, error) {
	var items []*wal.Item
	rev, err := wal.ReadSnapshot(b, wal.DefaultMaxRecord, func(it *wal.Item) error {
		c := *it
		items = append(items, &c)
		return nil
	})
	return rev, items, err
}

// TestSnapshot_BorrowedValues: read with Borrow, each key and value is
// right while Item runs (a copy made then matches what was written),
// whatever the reader's buffer holds afterwards.
func TestSnapshot_BorrowedValues(t *testing.T) {
	items := sampleItems(5000)
	var got []*wal.Item
	rev, err := wal.ReadSnapshotBorrow(snapshotBytes(t, 9000, items), wal.DefaultMaxRecord, func(it *wal.Item) error {
		c := *it
		c.Key, c.Value = strings.Clone(it.Key), strings.Clone(it.Value)
		got = append(got, &c)
		return nil
	}, true)
	require.NoError(t, err)
	require.Equal(t, int64(9000), rev)
	require.Equal(t, items, got)

	// The order of keys is checked against a copy of the previous one,
	// not against the buffer it was borrowed from.
	for _, swap := range [][2]int{{1, 2}, {2, 3}, {0, 4999}} {
		unordered := sampleItems(5000)
		unordered[swap[0]], unordered[swap[1]] = unordered[swap[1]], unordered[swap[0]]
		_, err = wal.ReadSnapshotBorrow(wal.WriteSnapshotUnchecked(9000, unordered), wal.DefaultMaxRecord, func(*wal.Item) error { return nil }, true)
		require.ErrorIs(t, err, wal.ErrCorrupt, "keys %d and %d swapped", swap[0], swap[1])
	}
}

func TestSnapshot_RoundTrip(t *testing.T) {
	for _, c := range []struct {
		n   int
		big bool // values larger than the reader's buffer, between others
	}{{0, false}, {1, false}, {5000, false}, {5000, true}} { // 5000 items cross the encoder's and the reader's buffers
		items := sampleItems(c.n)
		if c.big {
			for _, i := range []int{10, 11, 4000} {
				items[i].Value = strings.Repeat(fmt.Sprint(i), 50<<10)
			}
		}
		rev, got, err := readSnapshot(snapshotBytes(t, 9000, items))
		require.NoError(t, err)
		require.Equal(t, int64(9000), rev)
		require.Equal(t, len(items), len(got))
		for i := range items {
			require.Equal(t, *items[i], *got[i])
		}
	}
}

// TestSnapshot_Damage: a snapshot is synced before it is named, so any
// damage, a cut included, is corruption, never a shorter state.
func TestSnapshot_Damage(t *testing.T) {
	b := snapshotBytes(t, 50, sampleItems(4))
	for cut := 0; cut < len(b); cut++ {
		_, _, err := readSnapshot(b[:cut])
		require.ErrorIs(t, err, wal.ErrCorrupt, "cut at %d", cut)
	}
	for bit := 0; bit < len(b)*8; bit++ {
		c := bytes.Clone(b)
		c[bit/8] ^= 1 << (bit % 8)
		_, _, err := readSnapshot(c)
		require.ErrorIs(t, err, wal.ErrCorrupt, "bit %d", bit)
	}
	_, _, err := readSnapshot(append(bytes.Clone(b), 0))
	require.ErrorIs(t, err, wal.ErrCorrupt, "a byte after the trailer")

	unordered := sampleItems(3)
	unordered[1], unordered[2] = unordered[2], unordered[1]
	_, _, err = readSnapshot(wal.WriteSnapshotUnchecked(50, unordered))
	require.ErrorIs(t, err, wal.ErrCorrupt, "keys out of order")

	_, _, err = readSnapshot(wal.WriteSnapshotUnchecked(11, sampleItems(3)))
	require.ErrorIs(t, err, wal.ErrCorrupt, "an item newer than the snapshot")
}

// TestLog_Snapshot: a snapshot replaces the segments it covers and the
// snapshot before it; Open replays the newest snapshot, then the records
// after it.
func TestLog_Snapshot(t *testing.T) {
	for _, fs := range []vfs.FS{vfs.NewMemFS(), osfsIn(t)} {
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
		appendDurable(t, l, 1, 40)
		before := l.Stats()
		require.Greater(t, before.Segments, 3)
		require.ErrorContains(t, l.Snapshot(41, nil), "beyond the durable")

		require.NoError(t, l.Snapshot(20, slices.Values(sampleItems(3))))
		st := l.Stats()
		require.Equal(t, int64(20), st.SnapshotRevision)
		require.Less(t, st.Segments, before.Segments, "covered segments removed")
		require.Less(t, st.Bytes, before.Bytes)
		appendDurable(t, l, 41, 45)
		// What a failed try at 44 left, its removal failing too, does not
		// stop the next.
		left, err := fs.Create(fmt.Sprintf("db/snap/%020d.snap.tmp", 44))
		require.NoError(t, err)
		_, err = left.Write([]byte("half a snapshot"))
		require.NoError(t, err)
		require.NoError(t, left.Close())
		require.NoError(t, l.Snapshot(44, slices.Values(sampleItems(2))))
		require.NoError(t, l.Snapshot(30, nil), "an older snapshot does nothing")
		require.NoError(t, l.Close())

		snaps, err := fs.List("db/snap")
		require.NoError(t, err)
		require.Equal(t, []string{fmt.Sprintf("%020d.snap", 44)}, snaps, "the older snapshot is removed")

		var got struct {
			rev   int64
			items []string
			txs   []int64
		}
		l, err = wal.Open("db", &wal.Options{FS: fs}, wal.Replay{
			Snapshot: func(rev int64) error { got.rev = rev; return nil },
			Item:     func(it *wal.Item) error { got.items = append(got.items, it.Key); return nil },
			Tx: func(tx *wal.Tx) error {
				require.Equal(t, *txN(tx.Revision), *tx)
				got.txs = append(got.txs, tx.Revision)
				return nil
			},
		})
		require.NoError(t, err)
		require.Equal(t, int64(44), got.rev)
		require.Equal(t, []string{"k0000", "k0001"}, got.items)
		require.Equal(t, []int64{45}, got.txs)
		appendDurable(t, l, 46, 47)
		require.NoError(t, l.Close())
		l, revs := reopen(t, fs, nil)
		require.Equal(t, []int64{45, 46, 47}, revs)
		require.NoError(t, l.Close())
	}
}

// TestLog_Snapshot_RefusesBadItems: an item that the reader would refuse,
// or a nil one, fails Snapshot (and WriteSnapshot) with ErrInvalid before
// the snapshot is in place: no file is left, no segment is removed, and
// the log takes appends and a good snapshot, and opens again; what
// WriteSnapshot wrote does not read as a snapshot.
func TestLog_Snapshot_RefusesBadItems(t *testing.T) {
	ok := func(key string) *wal.Item {
		return &wal.Item{Key: key, Value: "v", Revision: 5, CreateRevision: 2, Version: 1}
	}
	with := func(f func(*wal.Item)) []*wal.Item { it := ok("b"); f(it); return []*wal.Item{ok("a"), it} }
	for name, items := range map[string][]*wal.Item{
		"empty key":           with(func(it *wal.Item) { it.Key = "" }),
		"keys not ascending":  {ok("b"), ok("a")},
		"key twice":           {ok("a"), ok("a")},
		"no create revision":  with(func(it *wal.Item) { it.CreateRevision = 0 }),
		"created after":       with(func(it *wal.Item) { it.CreateRevision = 6 }),
		"after the snapshot":  with(func(it *wal.Item) { it.Revision = 21 }),
		"no version":          with(func(it *wal.Item) { it.Version = 0 }),
		"only revision given": {{Key: "k", Value: "v", Revision: 20}},
		"nil item":            {ok("a"), nil, ok("b")},
		"nil first item":      {nil, ok("a")},
		"nil last item":       {ok("a"), nil},
	} {
		var buf bytes.Buffer
		_, err := wal.WriteSnapshot(&buf, 20, slices.Values(items))
		require.ErrorIs(t, err, wal.ErrInvalid, name)
		_, err = wal.ReadSnapshotFrom(&buf, 0, wal.Replay{})
		require.ErrorIs(t, err, wal.ErrCorrupt, "%s: what was written is no snapshot", name)

		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
		appendDurable(t, l, 1, 20)
		segs, err := fs.List("db/wal")
		require.NoError(t, err)
		require.ErrorIs(t, l.Snapshot(20, slices.Values(items)), wal.ErrInvalid, name)
		requireSnapshotRefused(t, fs, l, segs, name)
		appendDurable(t, l, 21, 22)
		require.NoError(t, l.Snapshot(21, slices.Values([]*wal.Item{ok("a")})), name)
		require.NoError(t, l.Close())
		l, revs := reopen(t, fs, nil)
		require.Equal(t, []int64{22}, revs, name)
		require.NoError(t, l.Close())
	}
}

// TestLog_Snapshot_RefusesNilItems: a nil sequence of items, which is
// not the empty state (that is a sequence that yields nothing), fails
// Snapshot and WriteSnapshot with ErrInvalid before the snapshot is in
// place, as a nil item does.
func TestLog_Snapshot_RefusesNilItems(t *testing.T) {
	var buf bytes.Buffer
	_, err := wal.WriteSnapshot(&buf, 20, nil)
	require.ErrorIs(t, err, wal.ErrInvalid)
	require.Zero(t, buf.Len(), "nothing written")

	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
	appendDurable(t, l, 1, 20)
	segs, err := fs.List("db/wal")
	require.NoError(t, err)
	require.ErrorIs(t, l.Snapshot(20, nil), wal.ErrInvalid)
	requireSnapshotRefused(t, fs, l, segs, "a nil sequence")
	appendDurable(t, l, 21, 22)
	require.NoError(t, l.Snapshot(21, slices.Values([]*wal.Item(nil))), "an empty sequence is the empty state")
	require.NoError(t, l.Close())
	l, revs := reopen(t, fs, nil)
	require.Equal(t, []int64{22}, revs)
	require.NoError(t, l.Close())
}

// TestLog_Snapshot_TooLarge: an item whose record is over the log's
// MaxRecord, which Open would refuse, fails Snapshot with ErrTooLarge
// before the snapshot is in place: no file is left, no segment is
// removed, and the log takes appends and opens again. An item of exactly
// MaxRecord bytes, which Open reads, is written.
func TestLog_Snapshot_TooLarge(t *testing.T) {
	const limit = 100
	item := func(key string, size int) *wal.Item {
		it := &wal.Item{Key: key, Revision: 5, CreateRevision: 2, Version: 1}
		it.Value = strings.Repeat("v", size-len(wal.AppendItem(nil, it)))
		require.Len(t, wal.AppendItem(nil, it), size)
		return it
	}
	fs := vfs.NewMemFS()
	o := &wal.Options{SegmentSize: 200, MaxRecord: limit}
	l, _ := reopen(t, fs, o)
	appendDurable(t, l, 1, 20)
	segs, err := fs.List("db/wal")
	require.NoError(t, err)
	for _, items := range [][]*wal.Item{
		{item("a", limit+1)},
		{item("a", limit), item("b", limit+1), item("c", 10)},
	} {
		err = l.Snapshot(20, slices.Values(items))
		require.ErrorIs(t, err, wal.ErrTooLarge)
		require.ErrorContains(t, err, fmt.Sprintf("limit %d", limit))
		requireSnapshotRefused(t, fs, l, segs, "too large")
	}
	appendDurable(t, l, 21, 22)
	require.NoError(t, l.Close())
	l, revs := reopen(t, fs, o)
	require.Equal(t, seq(1, 22), revs)

	// The largest item the reader takes is written, and read back.
	at := item("a", limit)
	require.NoError(t, l.Snapshot(22, slices.Values([]*wal.Item{at})))
	require.NoError(t, l.Close())
	var got []wal.Item
	l, err = wal.Open("db", &wal.Options{FS: fs, MaxRecord: limit}, wal.Replay{
		Item: func(it *wal.Item) error { got = append(got, *it); return nil },
	})
	require.NoError(t, err)
	require.Equal(t, []wal.Item{*at}, got)
	require.NoError(t, l.Close())
}

// TestLog_SnapshotReadInPieces: Open and Check read a snapshot in pieces
// (vfs.OpenRead), never whole into memory, and Open still learns its
// number of items ahead from its end (Items).
func TestLog_SnapshotReadInPieces(t *testing.T) {
	for _, inner := range []vfs.FS{vfs.NewMemFS(), osfsIn(t)} {
		fs := streamOnly{inner.(vfs.ReaderFS)}
		l, _ := reopen(t, fs, nil)
		appendDurable(t, l, 1, 1020)
		require.NoError(t, l.Snapshot(1010, slices.Values(sampleItems(1000))))
		require.NoError(t, l.Close())

		count, items := -1, 0
		l, err := wal.Open("db", &wal.Options{FS: fs}, wal.Replay{
			Items: func(n int) { count = n },
			Item:  func(*wal.Item) error { items++; return nil },
		})
		require.NoError(t, err)
		require.Equal(t, 1000, count)
		require.Equal(t, 1000, items)
		require.NoError(t, l.Close())
		rep, err := wal.Check("db", &wal.Options{FS: fs})
		require.NoError(t, err)
		require.EqualValues(t, 1000, rep.SnapshotItems)
	}
}

// FuzzReadSnapshot: whatever the bytes, ReadSnapshot returns a snapshot
// whose encoding reads back the same, or ErrCorrupt; it never panics.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f, 7, sampleItems(0)))
	f.Add(snapshotBytes(f, 50, sampleItems(3)))
	b := snapshotBytes(f, 50, sampleItems(2))
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		rev, items, err := readSnapshot(b)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			return
		}
		rev2, items2, err := readSnapshot(snapshotBytes(t, rev, items))
		require.NoError(t, err)
		require.Equal(t, rev, rev2)
		require.Equal(t, items, items2)
	})
}

// TestSnapshotCount: the count is read ahead from a snapshot's trailer,
// whatever its varint's length, and not from bytes that are not one.
func TestSnapshotCount(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 20000} {
		b := wal.WriteSnapshotUnchecked(90000, sampleItems(n)) // keys from k10000 on are below k9999
		got, ok := wal.SnapshotCount(b, wal.DefaultMaxRecord)
		require.True(t, ok, "%d items", n)
		require.Equal(t, n, got)
		_, ok = wal.SnapshotCount(b[:len(b)-1], wal.DefaultMaxRecord)
		require.False(t, ok, "cut short, %d items", n)
		bad := slices.Clone(b)
		bad[len(bad)-1] ^= 1
		_, ok = wal.SnapshotCount(bad, wal.DefaultMaxRecord)
		require.False(t, ok, "a flipped bit, %d items", n)
	}
	_, ok := wal.SnapshotCount(nil, wal.DefaultMaxRecord)
	require.False(t, ok)
	// A trailer claiming more items than the bytes can hold is no hint.
	b := wal.WriteSnapshotUnchecked(5, sampleItems(1))
	end := len(wal.AppendRecord(nil, wal.TypeSnapshot, []byte{1}))
	huge := wal.AppendRecord(slices.Clone(b[:len(b)-end]), wal.TypeSnapshot, binary.AppendUvarint(nil, 1<<40))
	_, ok = wal.SnapshotCount(huge, wal.DefaultMaxRecord)
	require.False(t, ok)
}

// FuzzSnapshotCount: whatever the bytes, snapshotCount never panics, and
// for a snapshot that reads without damage it gives its number of items.
func FuzzSnapshotCount(f *testing.F) {
	f.Add(snapshotBytes(f, 7, sampleItems(0)))
	f.Add(snapshotBytes(f, 50, sampleItems(3)))
	f.Add(wal.WriteSnapshotUnchecked(50, sampleItems(200))) // items after the snapshot
	b := snapshotBytes(f, 50, sampleItems(2))
	f.Add(b[:len(b)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := wal.SnapshotCount(b, wal.DefaultMaxRecord)
		require.GreaterOrEqual(t, n, 0)
		// Reading the end alone finds what the whole file gives.
		nAll, okAll := wal.SnapshotCountOfAll(b, wal.DefaultMaxRecord)
		require.Equal(t, okAll, ok)
		require.Equal(t, nAll, n)
		_, items, err := readSnapshot(b)
		if err == nil {
			require.True(t, ok)
			require.Equal(t, len(items), n)
		}
	})
}

func FuzzDecodeItem(f *testing.F) {
	for _, it := range sampleItems(3) {
		f.Add(wal.AppendItem(nil, it))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Borrowed, an item decodes the same, its value pointing into b.
		borrowed, berr := wal.DecodeItem(b, true)
		it, err := wal.DecodeItem(b, false)
		if err != nil {
			require.ErrorIs(t, err, wal.ErrCorrupt)
			require.Equal(t, err, berr)
			return
		}
		require.NoError(t, berr)
		require.Equal(t, it, borrowed)
		requireBorrowed(t, borrowed.Key, b, "key")
		requireBorrowed(t, borrowed.Value, b, "value")
		again, err := wal.DecodeItem(wal.AppendItem(nil, &it), false)
		require.NoError(t, err)
		require.Equal(t, it, again)
	})
}

// TestCheck: Check reports a sound log, a torn tail (without changing it)
// and corruption, in segments and in the snapshot.
func TestCheck(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
	appendDurable(t, l, 1, 30)
	require.NoError(t, l.Snapshot(20, slices.Values(sampleItems(3))))
	_, err := wal.Check("db", &wal.Options{FS: fs})
	require.ErrorIs(t, err, vfs.ErrLocked, "the log is open")
	require.NoError(t, l.Close())

	rep, err := wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, int64(20), rep.SnapshotRevision)
	require.Equal(t, int64(3), rep.SnapshotItems)
	require.Equal(t, int64(30), rep.LastRevision)
	require.Equal(t, int64(10), rep.Records)
	require.Zero(t, rep.TornBytes)

	segs, err := fs.List("db/wal")
	require.NoError(t, err)
	lastSeg := "db/wal/" + segs[len(segs)-1]
	b, err := fs.ReadFile(lastSeg)
	require.NoError(t, err)
	fs.WriteFile(lastSeg, b[:len(b)-3])
	rep, err = wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, int64(29), rep.LastRevision)
	require.Greater(t, rep.TornBytes, int64(0))
	b2, _ := fs.ReadFile(lastSeg)
	require.Equal(t, b[:len(b)-3], b2, "Check changes nothing")

	first := "db/wal/" + segs[0]
	b, err = fs.ReadFile(first)
	require.NoError(t, err)
	b[wal.SegmentHeaderSize+3] ^= 1
	fs.WriteFile(first, b)
	_, err = wal.Check("db", &wal.Options{FS: fs})
	require.ErrorIs(t, err, wal.ErrCorrupt)

	snaps, err := fs.List("db/snap")
	require.NoError(t, err)
	snap := "db/snap/" + snaps[0]
	b, err = fs.ReadFile(snap)
	require.NoError(t, err)
	fs.WriteFile(snap, b[:len(b)-1])
	_, err = wal.Check("db", &wal.Options{FS: fs})
	require.ErrorIs(t, err, wal.ErrCorrupt)
	require.Contains(t, err.Error(), "snap")
}

// TestCheck_RefusesWhatOpenRefuses: a log with no snapshot whose first
// segment is gone (its records start after revision 1), and a snapshot
// folder holding a file that is not a snapshot, are damage to Check as
// they are to Open; a snapshot a crash cut short (.snap.tmp) is not.
func TestCheck_RefusesWhatOpenRefuses(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
	appendDurable(t, l, 1, 30)
	require.NoError(t, l.Close())
	segs, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Greater(t, len(segs), 2)
	fs.WriteFile("db/snap/00000000000000000007.snap.tmp", []byte("cut short"))
	_, err = wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err, "a stale temporary snapshot")

	fs.WriteFile("db/snap/00000000000000000001.snap.bak", []byte("x"))
	_, _, err = openRevs(fs, wal.Options{})
	require.ErrorIs(t, err, wal.ErrCorrupt, "Open of a stray file in snap")
	_, err = wal.Check("db", &wal.Options{FS: fs})
	require.ErrorIs(t, err, wal.ErrCorrupt, "a stray file in snap")
	require.ErrorContains(t, err, "00000000000000000001.snap.bak")
	require.NoError(t, fs.Remove("db/snap/00000000000000000001.snap.bak"))

	require.NoError(t, fs.Remove("db/wal/"+segs[0]))
	_, err = wal.Check("db", &wal.Options{FS: fs})
	require.ErrorIs(t, err, wal.ErrCorrupt, "no snapshot, and the first segment gone")
	require.ErrorContains(t, err, "after 0")
}

// TestCreateFromSnapshot_IOErrors fails each file operation of
// CreateFromSnapshot in turn: an error leaves nothing that Open would
// read, and the folder can be restored again.
func TestCreateFromSnapshot_IOErrors(t *testing.T) {
	b := snapshotBytes(t, 100, sampleItems(3))
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		fs.FailAt(k, false)
		rev, err := wal.CreateFromSnapshot("db", bytes.NewReader(b), &wal.Options{FS: fs})
		fs.FailAt(0, false)
		if err == nil {
			require.Equal(t, int64(100), rev)
			require.Greater(t, k, 3, "too few operations to be a test")
			break
		}
		require.ErrorIs(t, err, vfs.ErrInjected, "k=%d", k)
		for _, d := range []string{"db", "db/wal", "db/snap"} {
			names, err := fs.List(d)
			if errors.Is(err, os.ErrNotExist) {
				continue // removed, as made
			}
			require.NoError(t, err)
			require.Empty(t, names, "k=%d: %s", k, d)
		}
		rev, err = wal.CreateFromSnapshot("db", bytes.NewReader(b), &wal.Options{FS: fs})
		require.NoError(t, err, "k=%d", k)
		require.Equal(t, int64(100), rev)
	}
}

// TestCreateFromSnapshot_NewFoldersDurable: the folders that
// CreateFromSnapshot makes are synced in their parents before it
// returns: a crash then leaves the snapshot, which Open reads.
func TestCreateFromSnapshot_NewFoldersDurable(t *testing.T) {
	fs := vfs.NewMemFS()
	rev, err := wal.CreateFromSnapshot("db", bytes.NewReader(snapshotBytes(t, 100, sampleItems(3))), &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, int64(100), rev)
	var got int64
	l, err := wal.Open("db", &wal.Options{FS: fs.Crash(0)}, wal.Replay{Snapshot: func(rev int64) error { got = rev; return nil }})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.Equal(t, int64(100), got)
}

// TestCreateFromSnapshot_FolderNotEmpty: a folder is empty for a restore
// only if it holds nothing but, perhaps, the log's own empty folders: a
// file or any other folder, anywhere in it, is ErrNotEmpty, and nothing
// is written.
func TestCreateFromSnapshot_FolderNotEmpty(t *testing.T) {
	b := snapshotBytes(t, 100, sampleItems(3))
	for _, c := range []struct {
		name  string
		make  []string // folders; a name ending in "file" is a file
		empty bool
	}{
		{"missing", nil, true},
		{"empty", []string{""}, true},
		{"the log's empty folders", []string{"wal", "snap"}, true},
		{"a folder of photos", []string{"photos/2024"}, false},
		{"an empty folder", []string{"x"}, false},
		{"a file", []string{"", "file"}, false},
		{"a folder in the log's", []string{"wal/x"}, false},
		{"a file in the log's", []string{"snap", "snap/file"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			for _, m := range c.make {
				p := filepath.Join(dir, m)
				if strings.HasSuffix(m, "file") {
					require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
				} else {
					require.NoError(t, os.MkdirAll(p, 0o755))
				}
			}
			rev, err := wal.CreateFromSnapshot(dir, bytes.NewReader(b), nil)
			if c.empty {
				require.NoError(t, err)
				require.Equal(t, int64(100), rev)
				return
			}
			require.ErrorIs(t, err, wal.ErrNotEmpty)
			_, err = os.Stat(filepath.Join(dir, "snap", "00000000000000000100.snap"))
			require.ErrorIs(t, err, os.ErrNotExist)
			_, err = os.Stat(filepath.Join(dir, "LOCK"))
			require.ErrorIs(t, err, os.ErrNotExist, "the lock file of a restore refused")
		})
	}
}

// TestCreateFromSnapshot_FailureLeavesNoFolder: a restore into a folder
// whose parents are missing too, of a stream that is no snapshot, removes
// every folder it made, the parents included.
func TestCreateFromSnapshot_FailureLeavesNoFolder(t *testing.T) {
	root := t.TempDir()
	_, err := wal.CreateFromSnapshot(filepath.Join(root, "new", "nested", "db"), strings.NewReader("not a snapshot at all, not at all"), nil)
	require.ErrorIs(t, err, wal.ErrCorrupt)
	names, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Empty(t, names)
}

// requireSnapshotRefused checks that a refused Log.Snapshot of l, in fs,
// whose segments were segs, left no snapshot, removed no segment and
// left the log usable.
func requireSnapshotRefused(t *testing.T, fs *vfs.MemFS, l *wal.Log, segs []string, what string) {
	t.Helper()
	snaps, err := fs.List("db/snap")
	require.NoError(t, err)
	require.Empty(t, snaps, what)
	after, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Equal(t, segs, after, "%s: no segment removed", what)
	require.NoError(t, l.Err(), what)
}
