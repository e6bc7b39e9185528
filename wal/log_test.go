package wal_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/internal/leaktest"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func txN(rev int64) *wal.Tx {
	return &wal.Tx{Revision: rev, Time: rev, Writes: []wal.Write{{Kind: wal.KindPut, Key: fmt.Sprintf("k%d", rev%7), Value: fmt.Sprintf("v%d", rev)}}}
}

// reopen opens the log in dir and returns the revisions it replays.
func reopen(t *testing.T, fs vfs.FS, o *wal.Options) (*wal.Log, []int64) {
	t.Helper()
	var revs []int64
	opts := wal.Options{FS: fs}
	if o != nil {
		opts = *o
		opts.FS = fs
	}
	l, err := wal.Open("db", &opts, wal.Replay{Tx: func(tx *wal.Tx) error {
		require.Equal(t, *txN(tx.Revision), *tx)
		revs = append(revs, tx.Revision)
		return nil
	}})
	require.NoError(t, err)
	return l, revs
}

func appendDurable(t *testing.T, l *wal.Log, from, to int64) {
	t.Helper()
	for r := from; r <= to; r++ {
		require.NoError(t, l.Append(txN(r)))
		require.NoError(t, l.WaitDurable(r))
	}
}

func seq(from, to int64) []int64 {
	var s []int64
	for r := from; r <= to; r++ {
		s = append(s, r)
	}
	return s
}

func TestLog_AppendReopen(t *testing.T) {
	for _, fs := range []vfs.FS{vfs.NewMemFS(), osfsIn(t)} {
		l, revs := reopen(t, fs, &wal.Options{SegmentSize: 200})
		require.Empty(t, revs)
		appendDurable(t, l, 1, 50)
		require.Greater(t, l.Stats().Segments, 3, "small segments rotate")
		require.NoError(t, l.Close())
		require.ErrorIs(t, l.Append(txN(51)), wal.ErrClosed)

		l, revs = reopen(t, fs, &wal.Options{SegmentSize: 200})
		require.Equal(t, seq(1, 50), revs)
		appendDurable(t, l, 51, 60)
		require.Error(t, l.Append(txN(60)), "revisions must increase")
		require.NoError(t, l.Close())
		l, revs = reopen(t, fs, nil)
		require.Equal(t, seq(1, 60), revs)
		require.NoError(t, l.Close())
	}
}

// TestLog_Append_TooLarge: a record over MaxRecord, which recovery would
// take for damage, is refused; the log goes on and reopens whole.
func TestLog_Append_TooLarge(t *testing.T) {
	fs := vfs.NewMemFS()
	o := &wal.Options{MaxRecord: 100}
	l, _ := reopen(t, fs, o)
	appendDurable(t, l, 1, 3)
	big := &wal.Tx{Revision: 4, Writes: []wal.Write{{Kind: wal.KindPut, Key: "k", Value: strings.Repeat("v", 100)}}}
	require.ErrorIs(t, l.Append(big), wal.ErrTooLarge)
	require.Equal(t, int64(3), l.Stats().Records, "nothing of the refused record is counted")
	appendDurable(t, l, 4, 6) // the refused record's revision is free
	require.NoError(t, l.Close())
	l, revs := reopen(t, fs, o)
	require.Equal(t, seq(1, 6), revs)
	require.NoError(t, l.Close())
}

// TestLog_Append_Invalid: a write that the decoder would refuse (an
// unknown kind, an empty key) is refused by Append, which writes nothing
// of it and stays usable, instead of acknowledging a record that fails
// the next Open.
func TestLog_Append_Invalid(t *testing.T) {
	for _, bad := range []wal.Write{
		{Kind: 0, Key: "k", Value: "v"},
		{Kind: wal.KindExpire + 1, Key: "k"},
		{Kind: wal.KindPut | 0x80, Key: "k", Value: "v"}, // Created, not a kind
		{Kind: wal.KindPut, Key: "", Value: "v"},
	} {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, nil)
		appendDurable(t, l, 1, 3)
		tx := &wal.Tx{Revision: 4, Writes: []wal.Write{{Kind: wal.KindPut, Key: "a", Value: "v"}, bad}}
		require.ErrorIs(t, l.Append(tx), wal.ErrInvalid, "%+v", bad)
		require.NoError(t, l.Err(), "not sticky")
		require.Equal(t, int64(3), l.Stats().Records, "nothing of the refused record is counted")
		appendDurable(t, l, 4, 6) // the refused record's revision is free
		require.NoError(t, l.Close())
		l, revs := reopen(t, fs, nil)
		require.Equal(t, seq(1, 6), revs, "%+v", bad)
		require.NoError(t, l.Close())
	}
}

// TestLog_Append_NextRevision: Append takes only the next revision, after
// Open, after a snapshot in the middle of a segment and in a log made
// from a snapshot, and refuses any other without becoming unusable; the
// log then opens with every acknowledged record.
func TestLog_Append_NextRevision(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, nil)
	require.ErrorIs(t, l.Append(txN(2)), wal.ErrInvalid, "a new log starts at 1")
	appendDurable(t, l, 1, 2)
	for _, rev := range []int64{2, 1, 4, 100} {
		require.ErrorIs(t, l.Append(txN(rev)), wal.ErrInvalid, "revision %d after 2", rev)
	}
	require.NoError(t, l.Err(), "not sticky")
	appendDurable(t, l, 3, 5)
	require.NoError(t, l.Snapshot(4, slices.Values([]*wal.Item{{Key: "k", Value: "v", Revision: 4, CreateRevision: 1, Version: 1}})))
	require.NoError(t, l.Close())

	l, revs := reopen(t, fs, nil)
	require.Equal(t, []int64{5}, revs)
	require.ErrorIs(t, l.Append(txN(7)), wal.ErrInvalid, "after Open")
	appendDurable(t, l, 6, 6)
	require.NoError(t, l.Close())
	l, revs = reopen(t, fs, nil)
	require.Equal(t, []int64{5, 6}, revs)
	require.NoError(t, l.Close())

	// A log made from a snapshot goes on from the snapshot's revision.
	var snap bytes.Buffer
	_, err := wal.WriteSnapshot(&snap, 9, slices.Values([]*wal.Item{}))
	require.NoError(t, err)
	fs = vfs.NewMemFS()
	_, err = wal.CreateFromSnapshot("db", &snap, &wal.Options{FS: fs})
	require.NoError(t, err)
	l, _ = reopen(t, fs, nil)
	require.ErrorIs(t, l.Append(txN(11)), wal.ErrInvalid, "after a restore at 9")
	appendDurable(t, l, 10, 11)
	require.NoError(t, l.Close())
	l, revs = reopen(t, fs, nil)
	require.Equal(t, []int64{10, 11}, revs)
	require.NoError(t, l.Close())
}

// osfsIn returns the OS file system rooted so that "db" is in a
// temporary directory.
func osfsIn(t *testing.T) vfs.FS { return rootedFS{vfs.OSFS{}, t.TempDir()} }

func TestLog_Locked(t *testing.T) {
	for _, fs := range []vfs.FS{vfs.NewMemFS(), osfsIn(t)} {
		l, _ := reopen(t, fs, nil)
		_, err := wal.Open("db", &wal.Options{FS: fs}, wal.Replay{})
		require.ErrorIs(t, err, vfs.ErrLocked)
		require.NoError(t, l.Close())
		l, _ = reopen(t, fs, nil)
		require.NoError(t, l.Close())
	}
}

// TestLog_GroupCommit: with 64 concurrent writers the log syncs far less
// often than it commits.
func TestLog_GroupCommit(t *testing.T) {
	l, _ := reopen(t, osfsIn(t), nil) // real fsyncs take long enough to group

	var mu sync.Mutex // plays the engine's writer lock: revisions in order
	next := int64(1)
	var wg sync.WaitGroup
	const writers, each = 64, 50
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				mu.Lock()
				rev := next
				next++
				err := l.Append(txN(rev))
				mu.Unlock()
				if err == nil {
					err = l.WaitDurable(rev)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	require.Equal(t, int64(writers*each), st.Records)
	require.Less(t, st.Syncs, st.Records/4, "group commit: %d syncs for %d commits", st.Syncs, st.Records)
	var timed int64
	for _, n := range st.SyncLatency.Counts {
		timed += n
	}
	require.Equal(t, st.Syncs, timed, "every sync is in the latency histogram")
	require.Positive(t, st.SyncLatency.Sum)
	require.NoError(t, l.Close())
}

// TestLog_CrashPoints crashes after the k-th mutating file operation, for
// every k until the workload completes, keeping 0, 50 or 100% of unsynced
// data, the rest cut off or zero-filled, or each file its own part of
// it as a seed chooses: every acknowledged record
// survives, the log replays a prefix of the commit order, and replaying
// twice gives the same.
func TestLog_CrashPoints(t *testing.T) {
	const n = 40
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: 300})
		fs.FailAt(k, true) // from the k-th operation on, the "machine" is off
		acked := int64(0)
		for r := int64(1); r <= n; r++ {
			if l.Append(txN(r)) != nil || l.WaitDurable(r) != nil {
				break
			}
			acked = r
		}
		l.Close()
		completed := acked == n
		for _, zeroFill := range []bool{false, true} {
			for _, keep := range []float64{0, 0.5, 1} {
				crashed := fs.Crash(keep)
				if zeroFill {
					crashed = fs.CrashZeroFilled(keep)
				}
				l2, revs := reopen(t, crashed, nil)
				require.NoError(t, l2.Close())
				require.GreaterOrEqual(t, int64(len(revs)), acked, "k=%d keep=%v zeroFill=%v: acknowledged records lost", k, keep, zeroFill)
				require.Equal(t, seq(1, int64(len(revs))), revs, "k=%d keep=%v zeroFill=%v: not a prefix", k, keep, zeroFill)
				l3, again := reopen(t, crashed, nil)
				require.NoError(t, l3.Close())
				require.Equal(t, revs, again, "k=%d: recovering twice differs", k)
				// The recovered log takes appends again.
				l4, _ := reopen(t, crashed, nil)
				appendDurable(t, l4, int64(len(revs))+1, int64(len(revs))+3)
				require.NoError(t, l4.Close())
			}
		}
		for seed := uint64(1); seed <= 8; seed++ {
			crashed := fs.CrashEach(vfs.KeepBySeed(seed), seed%2 == 0)
			l2, revs := reopen(t, crashed, nil)
			require.NoError(t, l2.Close())
			require.GreaterOrEqual(t, int64(len(revs)), acked, "k=%d seed=%d: acknowledged records lost", k, seed)
			require.Equal(t, seq(1, int64(len(revs))), revs, "k=%d seed=%d: not a prefix", k, seed)
		}
		if completed {
			require.Greater(t, k, 20, "the workload made too few file operations to be a test")
			break
		}
	}
}

// TestLog_IOErrors fails the k-th operation once, or from then on: an error
// is returned, nothing affected is acknowledged, the error sticks, and after
// a reopen every earlier acknowledgement is there.
func TestLog_IOErrors(t *testing.T) {
	for _, always := range []bool{false, true} {
		for k := 1; k <= 30; k++ {
			fs := vfs.NewMemFS()
			l, _ := reopen(t, fs, &wal.Options{SegmentSize: 300})
			appendDurable(t, l, 1, 5)
			fs.FailAt(k, always)
			acked := int64(5)
			var failed error
			for r := int64(6); r <= 40; r++ {
				err := l.Append(txN(r))
				if err == nil {
					err = l.WaitDurable(r)
				}
				if err != nil {
					failed = err
					break
				}
				acked = r
			}
			if failed != nil {
				require.ErrorIs(t, failed, vfs.ErrInjected)
				require.ErrorIs(t, l.Append(txN(acked+100)), vfs.ErrInjected, "the failure is sticky")
			}
			closeErr := l.Close()
			require.ErrorIs(t, closeErr, failed)
			require.Equal(t, closeErr, l.Close(), "a second Close returns what the first did")
			require.Equal(t, closeErr, l.Err())
			fs.FailAt(0, false)
			l2, revs := reopen(t, fs, nil)
			require.NoError(t, l2.Close())
			require.GreaterOrEqual(t, int64(len(revs)), acked, "always=%v k=%d", always, k)
			require.Equal(t, seq(1, int64(len(revs))), revs)
		}
	}
}

// TestLog_CloseTwice: every Close returns the sticky error, and Err
// agrees; after a clean Close both are nil, and Append says ErrClosed.
func TestLog_CloseTwice(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, nil)
	appendDurable(t, l, 1, 2)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	require.NoError(t, l.Err())
	require.ErrorIs(t, l.Append(txN(3)), wal.ErrClosed)

	l, _ = reopen(t, fs, nil)
	fs.FailAt(1, false)
	require.NoError(t, l.Append(txN(3)))
	require.ErrorIs(t, l.WaitDurable(3), vfs.ErrInjected)
	first := l.Close()
	require.ErrorIs(t, first, vfs.ErrInjected)
	require.Equal(t, first, l.Close())
	require.Equal(t, first, l.Err())
	fs.FailAt(0, false)
}

// segmentedLog writes revisions 1 to 30, durable, into segments of 300
// bytes, closes the log and returns its segments' names, more than two.
func segmentedLog(t *testing.T) (*vfs.MemFS, []string) {
	t.Helper()
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 300})
	appendDurable(t, l, 1, 30)
	require.NoError(t, l.Close())
	names, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Greater(t, len(names), 2)
	return fs, names
}

func TestLog_CorruptionAndRepair(t *testing.T) {
	fs, names := segmentedLog(t)
	rewrite(t, fs, "db/wal/"+names[0], func(b []byte) []byte {
		b[len(b)-3] ^= 0x10 // the last record of the first segment
		return b
	})

	_, err := wal.Open("db", &wal.Options{FS: fs}, wal.Replay{})
	require.ErrorIs(t, err, wal.ErrCorrupt)
	require.Contains(t, err.Error(), names[0])

	var logged []string
	l, revs := reopen(t, fs, &wal.Options{Repair: true, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
	require.NotEmpty(t, logged)
	require.Equal(t, seq(1, int64(len(revs))), revs)
	require.Less(t, len(revs), 30)
	appendDurable(t, l, int64(len(revs))+1, int64(len(revs))+2)
	require.NoError(t, l.Close())
}

// TestLog_TornTail cuts the newest segment's last record at every byte
// offset, then zeroes its last sectors, then fills them with garbage: Open
// succeeds with the records before, and the log appends and reopens.
func TestLog_TornTail(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, nil)
	appendDurable(t, l, 1, 3)
	require.NoError(t, l.Close())
	names, err := fs.List("db/wal")
	require.NoError(t, err)
	name := "db/wal/" + names[len(names)-1]
	good, err := fs.ReadFile(name)
	require.NoError(t, err)
	lastStart := len(good) - len(wal.AppendRecord(nil, wal.TypeTx, wal.AppendTx(nil, txN(3))))

	damaged := map[string][]byte{}
	for cut := lastStart; cut < len(good); cut++ {
		damaged[fmt.Sprintf("cut at %d", cut)] = good[:cut]
	}
	for _, fill := range []byte{0x00, 0xff, 0x5a} {
		b := append(append([]byte(nil), good[:lastStart]...), make([]byte, 1024)...)
		for i := lastStart; i < len(b); i++ {
			b[i] = fill
		}
		damaged[fmt.Sprintf("tail filled with %#x", fill)] = b
	}
	for what, b := range damaged {
		fs := vfs.NewMemFS()
		fs.WriteFile(name, b)
		l, revs := reopen(t, fs, nil)
		require.Equal(t, seq(1, 2), revs, what)
		appendDurable(t, l, 3, 4)
		require.NoError(t, l.Close())
		l, revs = reopen(t, fs, nil)
		require.Equal(t, seq(1, 4), revs, what)
		require.NoError(t, l.Close())
	}
}

// TestLog_SyncPolicies: SyncNever acknowledges at once and syncs only on
// Close; SyncInterval acknowledges at once and syncs within the interval.
func TestLog_SyncPolicies(t *testing.T) {
	recovered := func(fs *vfs.MemFS) []int64 {
		l, revs := reopen(t, fs.Crash(0), nil)
		require.NoError(t, l.Close())
		return revs
	}

	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{Sync: wal.SyncNever})
	appendDurable(t, l, 1, 10)
	require.Empty(t, recovered(fs), "SyncNever: a machine crash loses what was not synced")
	require.NoError(t, l.Close())
	require.Equal(t, seq(1, 10), recovered(fs), "Close syncs")

	fs = vfs.NewMemFS()
	l, _ = reopen(t, fs, &wal.Options{Sync: wal.SyncInterval(20 * time.Millisecond)})
	appendDurable(t, l, 1, 10)
	require.Eventually(t, func() bool { return len(recovered(fs)) == 10 }, 5*time.Second, 5*time.Millisecond,
		"SyncInterval syncs without Close")
	require.NoError(t, l.Close())
}

// TestLog_OpensFirstFormat opens a folder written before transaction
// payloads had their trailer byte: segments of the first format, the last
// with a torn tail. Open replays them and truncates the tail; new records
// go to a new segment in the current format, the old ones stay as they
// are, read in their own format; reopening, Check and a snapshot that
// replaces the old segments work.
func TestLog_OpensFirstFormat(t *testing.T) {
	v1 := func(from, to int64) []byte {
		b := segmentHeader(wal.SegmentVersionNoTrailer, from)
		for rev := from; rev <= to; rev++ {
			b = wal.AppendRecord(b, wal.TypeTx, appendTx(nil, txN(rev), wal.SegmentVersionNoTrailer))
		}
		return b
	}
	first, second := v1(1, 3), v1(4, 6)
	torn := wal.AppendRecord(nil, wal.TypeTx, appendTx(nil, txN(7), wal.SegmentVersionNoTrailer))
	torn = append(torn[:len(torn)-3], make([]byte, 512)...) // zero-filled by a crash
	fs := vfs.NewMemFS()
	fs.WriteFile("db/wal/00000000000000000001.log", first)
	fs.WriteFile("db/wal/00000000000000000004.log", append(slices.Clone(second), torn...))
	require.NoError(t, fs.MkdirAll("db/snap"))

	rep, err := wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, wal.Report{Segments: 2, Records: 6, LastRevision: 6, TornBytes: int64(len(torn))}, rep)

	var logged []string
	l, revs := reopen(t, fs, &wal.Options{Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
	require.Equal(t, seq(1, 6), revs)
	require.Len(t, logged, 1)
	require.Contains(t, logged[0], "torn tail")
	appendDurable(t, l, 7, 9)
	require.NoError(t, l.Close())

	names, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Equal(t, []string{"00000000000000000001.log", "00000000000000000004.log", "00000000000000000007.log"}, names)
	for name, want := range map[string][]byte{"00000000000000000001.log": first, "00000000000000000004.log": second} {
		b, err := fs.ReadFile("db/wal/" + name)
		require.NoError(t, err)
		require.Equal(t, want, b, name)
	}
	b, err := fs.ReadFile("db/wal/00000000000000000007.log")
	require.NoError(t, err)
	_, version, err := wal.DecodeSegmentHeader(b)
	require.NoError(t, err)
	require.Equal(t, byte(wal.SegmentVersion), version)
	require.Equal(t, byte(0xff), b[len(b)-1], "the new records end in the trailer")

	rep, err = wal.Check("db", &wal.Options{FS: fs})
	require.NoError(t, err)
	require.Equal(t, wal.Report{Segments: 3, Records: 9, LastRevision: 9}, rep)
	l, revs = reopen(t, fs, nil)
	require.Equal(t, seq(1, 9), revs)
	appendDurable(t, l, 10, 10)
	require.NoError(t, l.Snapshot(10, noItems))
	require.Equal(t, 1, l.Stats().Segments, "the snapshot replaced the old segments")
	appendDurable(t, l, 11, 12)
	require.NoError(t, l.Close())
	l, revs = reopen(t, fs, nil)
	require.Equal(t, seq(11, 12), revs)
	require.NoError(t, l.Close())
}

// TestLog_Repair_FirstRecordOfSegment: Repair that drops every record of
// a segment, its first one damaged, leaves no segment that the next append
// cannot start: the log takes writes and reopens whole.
func TestLog_Repair_FirstRecordOfSegment(t *testing.T) {
	for _, which := range []string{"last", "middle"} {
		fs, names := segmentedLog(t)
		name := names[len(names)-1]
		if which == "middle" {
			name = names[1]
		}
		first := firstRev(t, name)
		rewrite(t, fs, "db/wal/"+name, func(b []byte) []byte {
			b[wal.SegmentHeaderSize+wal.RecordHeaderSize+2] ^= 0x10 // the segment's first record
			return b
		})
		l, revs := reopen(t, fs, &wal.Options{SegmentSize: 300, Repair: true})
		require.Equal(t, seq(1, first-1), revs, which)
		for r := first; r <= first+2; r++ {
			require.NoError(t, l.Append(txN(r)), which)
			require.NoError(t, l.WaitDurable(r), which)
		}
		require.NoError(t, l.Close())
		l, revs = reopen(t, fs, nil)
		require.Equal(t, seq(1, first+2), revs, which)
		require.NoError(t, l.Close())
	}
}

// createSyncFS syncs the segment folder right after a segment is created,
// as a checkpoint that removes segments meanwhile does (or a journal that
// commits the new entry with other metadata), and keeps what crashes
// right after the segment's header was written, before it was synced,
// would leave.
type createSyncFS struct {
	*vfs.MemFS
	acked   *int64
	crashes []crashImage
}

type crashImage struct {
	fs    *vfs.MemFS
	acked int64
	what  string
}

func (f *createSyncFS) Create(name string) (vfs.File, error) {
	file, err := f.MemFS.Create(name)
	if err != nil || !strings.HasPrefix(name, "db/wal/") {
		return file, err
	}
	if err := f.MemFS.SyncDir("db/wal"); err != nil {
		return nil, err
	}
	return &headerCrash{File: file, fs: f}, nil
}

type headerCrash struct {
	vfs.File
	fs      *createSyncFS
	written bool
}

func (h *headerCrash) Write(p []byte) (int, error) {
	n, err := h.File.Write(p)
	if !h.written {
		h.written = true
		for _, keep := range []float64{0, 0.5, 1} {
			h.fs.crashes = append(h.fs.crashes,
				crashImage{h.fs.Crash(keep), *h.fs.acked, fmt.Sprintf("keep %v", keep)},
				crashImage{h.fs.CrashZeroFilled(keep), *h.fs.acked, fmt.Sprintf("keep %v, zero-filled", keep)})
		}
	}
	return n, err
}

// TestLog_CrashInSegmentHeader: a crash while a new segment's header is
// written, its entry in the folder already durable, leaves a last
// segment of at most a header, cut short or zero-filled, and no record:
// Open removes it, and the log takes appends.
func TestLog_CrashInSegmentHeader(t *testing.T) {
	var acked int64
	fs := &createSyncFS{MemFS: vfs.NewMemFS(), acked: &acked}
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
	for r := int64(1); r <= 20; r++ {
		require.NoError(t, l.Append(txN(r)))
		require.NoError(t, l.WaitDurable(r))
		acked = r
	}
	require.NoError(t, l.Close())
	require.Greater(t, len(fs.crashes), 12)
	for _, c := range fs.crashes {
		rep, err := wal.Check("db", &wal.Options{FS: c.fs})
		require.NoError(t, err, "acked %d, %s", c.acked, c.what)
		require.Equal(t, c.acked, rep.LastRevision, c.what)
		l, err := wal.Open("db", &wal.Options{FS: c.fs}, wal.Replay{})
		require.NoError(t, err, "acked %d, %s", c.acked, c.what)
		require.NoError(t, l.Close())
		l, revs := reopen(t, c.fs, nil)
		require.Equal(t, seq(1, c.acked), revs, c.what)
		appendDurable(t, l, c.acked+1, c.acked+2)
		require.NoError(t, l.Close())
	}
}

// killedFS is a MemFS on which a process was killed: the lock it held
// went with it, and what it wrote without a sync is still in the OS.
type killedFS struct{ *vfs.MemFS }

func (killedFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }

// TestLog_KillThenMachineCrash: records a killed process wrote but did
// not sync are replayed at the next Open, which appends after them; a
// machine crash later must not take them back, or the log has a hole
// before records acknowledged since.
func TestLog_KillThenMachineCrash(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncNever, wal.SyncInterval(time.Hour)} {
		fs := killedFS{vfs.NewMemFS()}
		l, _ := reopen(t, fs, &wal.Options{Sync: policy})
		appendDurable(t, l, 1, 5)
		// Killed: l is never closed, its records are in the OS alone.
		l2, revs := reopen(t, fs, nil)
		require.Equal(t, seq(1, 5), revs)
		appendDurable(t, l2, 6, 8) // synced, so acknowledged under SyncAlways
		require.NoError(t, l2.Close())
		crashes := []*vfs.MemFS{fs.Crash(0), fs.CrashZeroFilled(0)}
		require.NoError(t, l.Close()) // its goroutine goes; a killed one would sync nothing

		for i, crashed := range crashes {
			zeroFill := i == 1
			l3, err := wal.Open("db", &wal.Options{FS: crashed}, wal.Replay{})
			require.NoError(t, err, "zeroFill=%v", zeroFill)
			require.NoError(t, l3.Close())
			l3, revs = reopen(t, crashed, nil)
			require.Equal(t, seq(1, 8), revs, "zeroFill=%v", zeroFill)
			require.NoError(t, l3.Close())
		}
	}
}

// TestLog_WriteErrorStillSyncs: under SyncNever and SyncInterval a write
// that fails stops the log, but the records acknowledged before it are
// in the OS, whole: the interval sync and Close still sync them, as they
// would have without the failure. (A failed sync is another matter: it is
// never tried again.)
func TestLog_WriteErrorStillSyncs(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncNever, wal.SyncInterval(time.Hour), wal.SyncInterval(20 * time.Millisecond)} {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{Sync: policy})
		appendDurable(t, l, 1, 5)
		fs.FailAt(1, false) // the next write, once
		require.NoError(t, l.Append(txN(6)))
		require.ErrorIs(t, l.WaitDurable(6), vfs.ErrInjected)
		if policy != wal.SyncNever && policy != wal.SyncInterval(time.Hour) {
			require.Eventually(t, func() bool {
				n := 0
				l2, err := wal.Open("db", &wal.Options{FS: fs.Crash(0)}, wal.Replay{Tx: func(*wal.Tx) error { n++; return nil }})
				if err != nil {
					return false
				}
				return l2.Close() == nil && n == 5
			}, 5*time.Second, 5*time.Millisecond, "the interval sync goes on")
		}
		require.ErrorIs(t, l.Close(), vfs.ErrInjected)
		l2, revs := reopen(t, fs.Crash(0), nil)
		require.Equal(t, seq(1, 5), revs, "%+v: Close syncs what was acknowledged", policy)
		require.NoError(t, l2.Close())
	}
}

// requireFoldersDurable checks that the log's folders in dir, and so
// dir and its parents, outlast a crash.
func requireFoldersDurable(t *testing.T, fs *vfs.MemFS, dir string, what string) {
	t.Helper()
	c := fs.Crash(0)
	for _, d := range []string{path.Join(dir, "wal"), path.Join(dir, "snap")} {
		_, err := c.List(d)
		require.NoError(t, err, "%s: %s not durable", what, d)
	}
}

// TestLog_NewFoldersDurable: the folders that Open makes are synced in
// their parents before a record is acknowledged, so that a crash cannot
// take the log's files with them.
func TestLog_NewFoldersDurable(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, nil)
	appendDurable(t, l, 1, 3)
	crashed := fs.Crash(0)
	require.NoError(t, l.Close())
	l, revs := reopen(t, crashed, nil)
	require.Equal(t, seq(1, 3), revs)
	require.NoError(t, l.Close())
}

// TestLog_NewParentsDurable: Open and CreateFromSnapshot in a folder whose
// parents are missing too sync each folder they make in its parent, the
// parents included: a crash cannot take the whole tree away.
func TestLog_NewParentsDurable(t *testing.T) {
	fs := vfs.NewMemFS()
	l, err := wal.Open("new/nested/db", &wal.Options{FS: fs}, wal.Replay{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	requireFoldersDurable(t, fs, "new/nested/db", "Open")

	fs = vfs.NewMemFS()
	_, err = wal.CreateFromSnapshot("new/nested/db", bytes.NewReader(snapshotBytes(t, 100, sampleItems(3))), &wal.Options{FS: fs})
	require.NoError(t, err)
	requireFoldersDurable(t, fs, "new/nested/db", "CreateFromSnapshot")
}

// Exists knows a log's folder, one Open made, empty or not, from any
// other, and makes nothing in either.
func TestExists(t *testing.T) {
	dir := t.TempDir()
	ok, err := wal.Exists(dir, nil)
	require.NoError(t, err)
	require.False(t, ok, "an empty folder")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "wal"), 0o755))
	ok, err = wal.Exists(dir, nil)
	require.NoError(t, err)
	require.False(t, ok, "segments but no snapshots")
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, names, 1, "nothing made")

	l, err := wal.Open(dir, nil, wal.Replay{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	ok, err = wal.Exists(dir, nil)
	require.NoError(t, err)
	require.True(t, ok, "a log with no records yet")
}

// TestLog_CrashDuringRepair crashes an Open with Repair at each of its
// file operations, the damage in the last record of the first segment
// (Repair truncates it, and drops every later segment) or in the first
// record of a middle one (Repair drops it and every later one). Whatever
// the crash keeps, the log left is one that a plain Open either refuses,
// the damage still there, or replays as a prefix of the commits, with no
// gap; and a Repair then gives what an uninterrupted one gives.
func TestLog_CrashDuringRepair(t *testing.T) {
	for _, which := range []string{"last of first", "first of middle"} {
		damaged := func() *vfs.MemFS {
			fs, names := segmentedLog(t)
			if which == "last of first" {
				rewrite(t, fs, "db/wal/"+names[0], func(b []byte) []byte {
					b[len(b)-3] ^= 0x10
					return b
				})
			} else {
				rewrite(t, fs, "db/wal/"+names[1], func(b []byte) []byte {
					b[wal.SegmentHeaderSize+wal.RecordHeaderSize+2] ^= 0x10
					return b
				})
			}
			return fs
		}
		l, want := reopen(t, damaged(), &wal.Options{Repair: true})
		require.NoError(t, l.Close())
		require.Less(t, len(want), 30, which)

		for k := 1; ; k++ {
			fs := damaged()
			fs.FailAt(k, true)
			l, err := wal.Open("db", &wal.Options{FS: fs, Repair: true}, wal.Replay{})
			if err == nil {
				require.NoError(t, l.Close())
			}
			for _, keep := range []float64{0, 0.5, 1} {
				for _, c := range []*vfs.MemFS{fs.Crash(keep), fs.CrashZeroFilled(keep)} {
					what := fmt.Sprintf("%s: crash at operation %d, keep %v", which, k, keep)
					var revs []int64
					l, err := wal.Open("db", &wal.Options{FS: c}, wal.Replay{Tx: func(tx *wal.Tx) error {
						revs = append(revs, tx.Revision)
						return nil
					}})
					if err != nil {
						require.ErrorIs(t, err, wal.ErrCorrupt, what)
					} else {
						require.NoError(t, l.Close())
						require.Equal(t, seq(1, int64(len(revs))), revs, "%s: a gap in the log", what)
					}
					l, revs = reopen(t, c, &wal.Options{Repair: true})
					require.NoError(t, l.Close())
					require.Equal(t, want, revs, what)
				}
			}
			if err == nil {
				break
			}
		}
	}
}

// replayed opens the log in fs and returns the revision of its snapshot
// and those of the transactions after it, or Open's error.
func replayed(fs vfs.FS) (snap int64, revs []int64, err error) {
	l, err := wal.Open("db", &wal.Options{FS: fs}, wal.Replay{
		Snapshot: func(rev int64) error { snap = rev; return nil },
		Tx:       func(tx *wal.Tx) error { revs = append(revs, tx.Revision); return nil },
	})
	if err != nil {
		return 0, nil, err
	}
	return snap, revs, l.Close()
}

// TestLog_CrashDuringRecovery: the crash tests stop a workload at each of
// its file operations, but never the Open that recovers from the crash,
// which truncates torn tails, syncs the last segment, and removes stale
// snapshots and empty segments. This crashes that Open too, at each of
// its operations, for every crash image of a workload that rotates,
// takes snapshots and keeps history: recovering again gives exactly what
// an uninterrupted recovery gives.
func TestLog_CrashDuringRecovery(t *testing.T) {
	const n = 40
	opened := 0
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: 300})
		fs.FailAt(k, true)
		acked := int64(0)
		for r := int64(1); r <= n; r++ {
			if l.Append(txN(r)) != nil || l.WaitDurable(r) != nil {
				break
			}
			acked = r
			if r == 15 || r == 30 {
				l.Retain(r - 8)
				if l.Snapshot(r, noItems) != nil {
					break
				}
			}
		}
		l.Close()
		for _, keep := range []float64{0, 0.5, 1} {
			for zi, image := range []*vfs.MemFS{fs.Crash(keep), fs.CrashZeroFilled(keep)} {
				wantSnap, want, err := replayed(image.Crash(1)) // a copy
				require.NoError(t, err)
				require.GreaterOrEqual(t, max(wantSnap, int64(len(want))+wantSnap), acked)
				for j := 1; ; j++ {
					img := image.Crash(1)
					img.FailAt(j, true)
					l, err := wal.Open("db", &wal.Options{FS: img}, wal.Replay{})
					opened++
					if err == nil {
						require.NoError(t, l.Close())
					}
					for _, keep2 := range []float64{0, 0.5, 1} {
						what := fmt.Sprintf("workload crashed at %d keeping %v (zero-filled %v), recovery at %d keeping %v", k, keep, zi == 1, j, keep2)
						snap, revs, rerr := replayed(img.Crash(keep2))
						require.NoError(t, rerr, what)
						require.Equal(t, wantSnap, snap, what)
						require.Equal(t, want, revs, what)
					}
					if err == nil {
						break
					}
				}
			}
		}
		if acked == n {
			break
		}
	}
	t.Logf("%d recoveries crashed", opened)
}

// TestLog_FailedSyncThenRestart: after a failed fsync the records it was
// to make durable are in the OS alone, and may never reach the disk: no
// later fsync writes them (vfs.MemFS loses them, as Linux does). A
// restart (no machine crash) must not replay them and append after them,
// or a machine crash later leaves a hole before records acknowledged
// since, and the log does not open.
func TestLog_FailedSyncThenRestart(t *testing.T) {
	for _, policy := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncNever} {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{Sync: policy})
		appendDurable(t, l, 1, 5)
		if policy == wal.SyncNever {
			require.NoError(t, l.Close()) // synced
			l, _ = reopen(t, fs, &wal.Options{Sync: policy})
			appendDurable(t, l, 6, 8) // in the OS alone
			fs.FailAt(1, false)       // Close's sync
		} else {
			fs.FailAt(2, false) // the write goes, its sync fails
			require.NoError(t, l.Append(txN(6)))
			require.ErrorIs(t, l.WaitDurable(6), vfs.ErrInjected)
		}
		require.ErrorIs(t, l.Close(), vfs.ErrInjected)
		fs.FailAt(0, false)

		l, revs := reopen(t, fs, nil) // the process restarts
		acked := int64(len(revs))
		appendDurable(t, l, acked+1, acked+3)
		require.NoError(t, l.Close())
		l, revs = reopen(t, fs.Crash(0), nil)
		require.Equal(t, seq(1, acked+3), revs, "%+v", policy)
		require.NoError(t, l.Close())
	}
}

// TestLog_GapIsDamage: a log missing a segment in its middle (a file
// removed by hand, say) has a gap in its revisions, which the log never
// writes (Append takes the next revision only): Open refuses it as
// damage rather than replay the records on either side of it.
func TestLog_GapIsDamage(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := reopen(t, fs, &wal.Options{SegmentSize: 200})
	appendDurable(t, l, 1, 50)
	require.NoError(t, l.Close())
	names, err := fs.List("db/wal")
	require.NoError(t, err)
	require.Greater(t, len(names), 3)
	require.NoError(t, fs.Remove("db/wal/"+names[1]))

	_, err = wal.Open("db", &wal.Options{FS: fs}, wal.Replay{Tx: func(*wal.Tx) error { return nil }})
	require.ErrorIs(t, err, wal.ErrCorrupt, "a log with a segment missing")
}

// TestLog_FailedSyncStats: the records a failed fsync cut off the segment
// are not counted in the log's bytes any more, nor is the header of a new
// segment whose sync failed: Stats says what the files hold.
func TestLog_FailedSyncStats(t *testing.T) {
	for _, c := range []struct {
		name    string
		segment int64 // SegmentSize: 1 starts a segment for each group
		at      int   // the operation that fails, from the Append on
	}{
		{"records", 0, 2},
		// The old segment synced, the new one made, its header
		// written, its sync failing.
		{"a new segment's header", 1, 4},
	} {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: c.segment})
		appendDurable(t, l, 1, 5)
		fs.FailAt(c.at, false)
		require.NoError(t, l.Append(txN(6)))
		require.ErrorIs(t, l.WaitDurable(6), vfs.ErrInjected, c.name)
		var held int64
		names, err := fs.List("db/wal")
		require.NoError(t, err)
		for _, n := range names {
			b, err := fs.ReadFile("db/wal/" + n)
			require.NoError(t, err)
			held += int64(len(b))
		}
		require.Equal(t, held, l.Stats().Bytes, "%s: the files' bytes", c.name)
		l.Close()
	}
}

// TestLog_FailedOpenThenRestart: an Open that fails at any of its file
// operations (it syncs the last segment, whose records a killed process
// left in the OS alone, after truncating a torn tail) and then a restart
// without a machine crash: the records whose sync failed may never reach
// the disk, and no later fsync writes them (vfs.MemFS loses them, as
// Linux does). The Open after it must not serve them as durable and
// append after them: a machine crash then would leave a hole before
// records acknowledged since.
func TestLog_FailedOpenThenRestart(t *testing.T) {
	for _, torn := range []bool{false, true} {
		for k := 1; ; k++ {
			fs := killedFS{vfs.NewMemFS()}
			l, _ := reopen(t, fs, &wal.Options{Sync: wal.SyncNever})
			appendDurable(t, l, 1, 5)
			// Killed: l is never closed, its records are in the OS alone.
			if torn {
				names, err := fs.List("db/wal")
				require.NoError(t, err)
				f, err := fs.OpenAppend("db/wal/" + names[len(names)-1])
				require.NoError(t, err)
				_, err = f.Write([]byte{1, 2, 3})
				require.NoError(t, err)
			}
			fs.FailAt(k, false)
			l2, err := wal.Open("db", &wal.Options{FS: fs}, wal.Replay{})
			fs.FailAt(0, false)
			if err == nil {
				require.NoError(t, l2.Close())
			}
			what := fmt.Sprintf("torn=%v, Open's operation %d failed", torn, k)
			l2, revs := reopen(t, fs, nil) // the process restarts
			acked := int64(len(revs))
			appendDurable(t, l2, acked+1, acked+3)
			require.NoError(t, l2.Close())
			crashed := fs.Crash(0)
			require.NoError(t, l.Close()) // its goroutines go; a killed one would sync nothing
			l3, revs := reopen(t, crashed, nil)
			require.Equal(t, seq(1, acked+3), revs, what)
			require.NoError(t, l3.Close())
			if err == nil {
				break
			}
		}
	}
}

// TestLog_NewFoldersSyncFailed: an Open that made the log's folders and
// failed to sync one of them in its parent, then a restart: the Open
// after it must still make them durable before a record is
// acknowledged, or a crash takes the folders, and the records, away.
func TestLog_NewFoldersSyncFailed(t *testing.T) {
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		fs.FailAt(k, false)
		l, err := wal.Open("new/db", &wal.Options{FS: fs}, wal.Replay{})
		fs.FailAt(0, false)
		if err == nil {
			require.NoError(t, l.Close())
			require.Greater(t, k, 1, "no operation of Open's failed")
			break
		}
		require.ErrorIs(t, err, vfs.ErrInjected)
		l, err = wal.Open("new/db", &wal.Options{FS: fs}, wal.Replay{}) // the process restarts
		require.NoError(t, err)
		require.NoError(t, l.Append(txN(1)))
		require.NoError(t, l.WaitDurable(1))
		requireFoldersDurable(t, fs, "new/db", fmt.Sprintf("Open's operation %d failed", k))
		require.NoError(t, l.Close())
	}
}

// TestLog_FailedSnapshotGoesOn fails the k-th file operation once, for
// every k, in a workload that takes one snapshot, which removes a
// segment, and appends on after it, failed or not (the log stays usable;
// an append that fails stops it). A snapshot whose file or folder sync
// failed must not drop the log it would have replaced, nor let the Open
// after a restart do so, while it may not be durable: a crash after the
// workload, and after a restart, more appends and a snapshot, keeps
// every acknowledged record. (A later snapshot's folder sync would hide
// a dropped one's: the workload takes none.)
func TestLog_FailedSnapshotGoesOn(t *testing.T) {
	const n = 40
	for k := 1; ; k++ {
		fs := vfs.NewMemFS()
		l, _ := reopen(t, fs, &wal.Options{SegmentSize: 300})
		fs.FailAt(k, false)
		snapFailed := false
		acked := int64(0)
		for r := int64(1); r <= n; r++ {
			if l.Append(txN(r)) != nil || l.WaitDurable(r) != nil {
				break
			}
			acked = r
			if r == 20 {
				l.Retain(r - 2)
				snapFailed = l.Snapshot(r, noItems) != nil
			}
		}
		ops := fs.Ops()
		l.Close()
		fs.FailAt(0, false)
		checkCrashes := func(when string, fs *vfs.MemFS, acked int64) {
			for seed := uint64(0); seed <= 8; seed++ {
				image := fs.Crash(0)
				if seed > 0 {
					image = fs.CrashEach(vfs.KeepBySeed(seed), seed%2 == 0)
				}
				what := fmt.Sprintf("k=%d (a snapshot failed: %v), crash %s, seed %d", k, snapFailed, when, seed)
				snap, revs, err := replayed(image)
				require.NoError(t, err, what)
				if len(revs) > 0 {
					require.Equal(t, seq(snap+1, revs[len(revs)-1]), revs, what)
				}
				require.GreaterOrEqual(t, snap+int64(len(revs)), acked, what)
			}
		}
		checkCrashes("after the workload", fs, acked)

		snap, revs, err := replayed(fs) // the process restarts
		require.NoError(t, err, "k=%d", k)
		last := snap + int64(len(revs))
		l, _ = reopen(t, fs, &wal.Options{SegmentSize: 300})
		appendDurable(t, l, last+1, last+10)
		require.NoError(t, l.Snapshot(last+5, noItems))
		require.NoError(t, l.Close())
		checkCrashes("after a restart", fs, last+10)
		if ops < k {
			break
		}
	}
}
