package wal_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// openHistory opens the log in dir and returns the revisions it hands to
// Replay.History and to Replay.Tx.
func openHistory(t *testing.T, fs vfs.FS, o wal.Options) (l *wal.Log, hist, txs []int64, err error) {
	t.Helper()
	o.FS = fs
	check := func(into *[]int64) func(*wal.Tx) error {
		return func(tx *wal.Tx) error {
			require.Equal(t, *txN(tx.Revision), *tx)
			*into = append(*into, tx.Revision)
			return nil
		}
	}
	l, err = wal.Open("db", &o, wal.Replay{History: check(&hist), Tx: check(&txs)})
	return l, hist, txs, err
}

// TestLog_Retain checks that a snapshot keeps the segments holding records
// after the revision given to Retain, that Open hands those the snapshot
// holds to Replay.History in order, and that without Retain it keeps none.
func TestLog_Retain(t *testing.T) {
	for _, retain := range []int64{0, 30, 55, 80} {
		fs := vfs.NewMemFS()
		l, hist, txs, err := openHistory(t, fs, wal.Options{SegmentSize: 200})
		require.NoError(t, err)
		require.Empty(t, hist)
		require.Empty(t, txs)
		appendDurable(t, l, 1, 80)
		if retain > 0 {
			l.Retain(retain)
		}
		require.NoError(t, l.Snapshot(70, noItems))
		appendDurable(t, l, 81, 90)
		require.NoError(t, l.Close())

		l, hist, txs, err = openHistory(t, fs, wal.Options{SegmentSize: 200})
		require.NoError(t, err)
		require.Equal(t, seq(71, 90), txs)
		require.NotEmpty(t, hist, "retain %d", retain)
		// Whole segments are kept: the history starts at or before the
		// first record after retain, and runs without a gap to the
		// snapshot.
		first := hist[0]
		require.Equal(t, seq(first, 70), hist, "retain %d", retain)
		if retain == 0 {
			require.Greater(t, first, int64(60), "without Retain a snapshot keeps only the segment it ends in")
		} else {
			require.LessOrEqual(t, first, min(retain+1, 71), "retain %d", retain)
		}
		require.NoError(t, l.Close())
	}
}

// TestLog_Retain_Damage checks that damage in a segment kept only for the
// history, a flipped bit or a segment gone, costs that segment and the
// older ones and never the state: Open goes on with the history after
// it, with or without Repair, and Check reports it first.
func TestLog_Retain_Damage(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, fs *vfs.MemFS, names []string) (lost int)
	}{
		{"a flipped bit", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			flipMiddle(t, fs, path.Join("db/wal", names[1]), 0x10)
			return 2
		}},
		{"a segment cut short", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			rewrite(t, fs, path.Join("db/wal", names[1]), func(b []byte) []byte { return b[:len(b)-3] })
			return 2
		}},
		{"a zeroed tail", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			rewrite(t, fs, path.Join("db/wal", names[1]), func(b []byte) []byte {
				clear(b[len(b)/2:])
				return b
			})
			return 2
		}},
		{"a record's length over the limit", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			rewrite(t, fs, path.Join("db/wal", names[1]), func(b []byte) []byte {
				binary.LittleEndian.PutUint32(b[wal.SegmentHeaderSize:], 1<<31)
				return b
			})
			return 2
		}},
		{"a damaged header", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			rewrite(t, fs, path.Join("db/wal", names[1]), func(b []byte) []byte {
				b[0] ^= 0xff
				return b
			})
			return 2
		}},
		{"a segment gone", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			require.NoError(t, fs.Remove(path.Join("db/wal", names[1])))
			return 1 // the one before the gap; the rest is whole
		}},
		{"the segment before the snapshot's gone", func(t *testing.T, fs *vfs.MemFS, names []string) int {
			// The last segment of history alone: the one before the
			// segment the snapshot ends in, which holds state too.
			j := slices.Index(names, "00000000000000000064.log")
			require.NoError(t, fs.Remove(path.Join("db/wal", names[j-1])))
			return j - 1
		}},
	} {
		for _, repair := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/repair=%v", c.name, repair), func(t *testing.T) {
				fs := vfs.NewMemFS()
				l, _, _, err := openHistory(t, fs, wal.Options{SegmentSize: 200})
				require.NoError(t, err)
				appendDurable(t, l, 1, 80)
				l.Retain(1)
				require.NoError(t, l.Snapshot(70, noItems))
				appendDurable(t, l, 81, 90)
				require.NoError(t, l.Close())

				names, err := fs.List("db/wal")
				require.NoError(t, err)
				require.Greater(t, len(names), 4)
				require.Contains(t, names, "00000000000000000064.log", "the snapshot ends in a later segment")
				lost := c.damage(t, fs, names)

				rep, err := wal.Check("db", &wal.Options{FS: fs})
				require.NoError(t, err, "only history is at stake")
				require.NotEmpty(t, rep.HistoryDamage)
				require.Equal(t, lost, rep.HistorySegmentsLost)
				require.Equal(t, int64(90), rep.LastRevision)

				l, hist, txs, err := openHistory(t, fs, wal.Options{SegmentSize: 200, Repair: repair})
				require.NoError(t, err)
				require.Equal(t, seq(71, 90), txs, "the state is whole")
				require.NotEmpty(t, hist)
				require.Equal(t, seq(hist[0], 70), hist, "the history is whole after the damage")
				require.NoError(t, l.Close())
				after, err := fs.List("db/wal")
				require.NoError(t, err)
				require.Equal(t, hist[0], firstRev(t, after[0]), "the history starts with the oldest segment left")

				rep, err = wal.Check("db", &wal.Options{FS: fs})
				require.NoError(t, err)
				require.Empty(t, rep.HistoryDamage, "Open dropped it")
			})
		}
	}
}

func firstRev(t *testing.T, name string) int64 {
	var rev int64
	_, err := fmt.Sscanf(name, "%020d.log", &rev)
	require.NoError(t, err)
	return rev
}

func noItems(func(*wal.Item) bool) {}

// historyWrites is how many writes historyTx(rev) holds: one to three.
func historyWrites(rev int64) int { return int(rev%3) + 1 }

// historyTx is the transaction at rev of the history tests' logs.
func historyTx(rev int64) *wal.Tx {
	tx := &wal.Tx{Revision: rev, Time: rev}
	for i := range historyWrites(rev) {
		tx.Writes = append(tx.Writes, wal.Write{Kind: wal.KindPut, Key: fmt.Sprintf("k%d", i), Value: fmt.Sprint(rev)})
	}
	return tx
}

// TestLog_HistoryEvents checks that Replay.HistoryEvents skips only
// transactions that a history keeping that many events would drop, and
// every one of those, counting the records after the snapshot too: the
// history starts exactly at the oldest transaction such a history keeps
// (or right after the snapshot, if it keeps none the snapshot holds),
// and runs without a gap to the snapshot. Of a segment of history alone,
// only the records History is given are read twice.
func TestLog_HistoryEvents(t *testing.T) {
	writes, txOf := historyWrites, historyTx
	fs := vfs.NewMemFS()
	o := wal.Options{FS: fs, SegmentSize: 300}
	const snap, last = 280, 300
	writeRetained(t, &o, snap, last, txOf)

	open := func(keep int) int64 {
		var hist, txs []int64
		reads := &readCounter{MemFS: fs, whole: map[string]int{}, bytes: map[string]int64{}}
		counted := o
		counted.FS = reads
		l, err := wal.Open("db", &counted, wal.Replay{HistoryEvents: keep,
			History: func(tx *wal.Tx) error {
				require.Equal(t, *txOf(tx.Revision), *tx)
				hist = append(hist, tx.Revision)
				return nil
			},
			Tx: func(tx *wal.Tx) error { txs = append(txs, tx.Revision); return nil }})
		require.NoError(t, err)
		require.NoError(t, l.Close())
		require.Equal(t, seq(snap+1, last), txs)
		first := firstGiven(t, hist, snap)
		// A segment of history alone is read in pieces, whole by the check,
		// then again only from the first record History is given, if any;
		// the others are read in pieces too: once by the replay, and before
		// that by the check, which counts their records' events if the
		// history is bounded, until the count skips every record the
		// snapshot holds. None is read whole.
		segs, err := fs.List("db/wal")
		require.NoError(t, err)
		firsts := make([]int64, len(segs))
		for i, name := range segs {
			fmt.Sscanf(name, "%d.log", &firsts[i])
		}
		covered := 0 // segments of history alone: the next starts at or before snap+1
		for covered+1 < len(segs) && firsts[covered+1] <= snap+1 {
			covered++
		}
		require.Greater(t, covered, 2)
		for i, name := range segs {
			name = path.Join("db/wal", name)
			what := fmt.Sprintf("keep %d: %s, revisions from %d, History from %d", keep, name, firsts[i], first)
			b, err := fs.ReadFile(name)
			require.NoError(t, err)
			size := int64(len(b))
			require.Zero(t, reads.whole[name], what)
			if i >= covered {
				switch {
				case keep == 0, keep == 1 && i == len(segs)-1:
					// No count; or one that stopped once the records after
					// the snapshot alone held more than the history keeps.
					require.Equal(t, size, reads.bytes[name], what)
				default:
					require.GreaterOrEqual(t, reads.bytes[name], size, what)
					require.LessOrEqual(t, reads.bytes[name], 2*size, what)
				}
				continue
			}
			switch last := firsts[i+1] - 1; {
			case last < first:
				require.Equal(t, size, reads.bytes[name], what)
			case firsts[i] < first:
				require.Greater(t, reads.bytes[name], size, what)
				require.Less(t, reads.bytes[name], 2*size-wal.SegmentHeaderSize, what)
			default:
				require.Equal(t, 2*size-wal.SegmentHeaderSize, reads.bytes[name], what)
			}
		}
		return first
	}
	require.Equal(t, int64(1), open(0), "Retain(1) keeps every segment")
	for _, keep := range []int{1, 2, 5, 40, 100, 300, 1000} {
		first := open(keep)
		kept := keptFrom(writes, last, keep)
		// Exactly: every record, those after the snapshot included, is
		// counted, and no more are skipped than the history drops.
		require.Equal(t, min(kept, int64(snap+1)), first, "keep %d", keep)
		if first > 1 {
			// What was skipped, the records from it on show dropped.
			n := 0
			for r := first - 1; r <= last; r++ {
				n += writes(r)
			}
			require.Greater(t, n, keep, "keep %d: %d skipped", keep, first-1)
		}
		if keep <= 100 {
			require.Greater(t, first, int64(100), "keep %d: most of the history is skipped", keep)
		}
	}
}

// TestLog_HistoryEvents_DamagedTail: the records after the snapshot,
// counted to move the history's cut on, are counted only as far as the
// replay goes: with the last segment cut short, or a segment after the
// snapshot damaged and the rest dropped (Repair), the history still
// starts at or before the oldest transaction a history of that many
// events holds once the replay ends.
func TestLog_HistoryEvents_DamagedTail(t *testing.T) {
	writes, txOf := historyWrites, historyTx
	const snap, last = 280, 300
	// damaged writes the log anew, then damages it: Repair drops what is
	// after the damage at the first Open.
	damaged := func(t *testing.T, damage string) *vfs.MemFS {
		fs := vfs.NewMemFS()
		writeRetained(t, &wal.Options{FS: fs, SegmentSize: 300}, snap, last, txOf)
		segs, err := fs.List("db/wal")
		require.NoError(t, err)
		var after []string // the segments after the snapshot's
		for _, name := range segs {
			if firstRev(t, name) > snap {
				after = append(after, path.Join("db/wal", name))
			}
		}
		require.GreaterOrEqual(t, len(after), 3)
		name := after[1] // with more segments after it
		if damage == "cut short" {
			name = after[len(after)-1]
		}
		b, err := fs.ReadFile(name)
		require.NoError(t, err)
		if damage == "cut short" {
			fs.WriteFile(name, b[:len(b)-3])
		} else {
			b[wal.SegmentHeaderSize+12] ^= 0xff // inside its first record
			fs.WriteFile(name, b)
		}
		return fs
	}
	for _, damage := range []string{"cut short", "damaged, then more segments"} {
		t.Run(damage, func(t *testing.T) {
			for _, keep := range []int{1, 5, 20, 40, 60, 100} {
				var hist, txs []int64
				l, err := wal.Open("db", &wal.Options{FS: damaged(t, damage), SegmentSize: 300, Repair: true}, wal.Replay{HistoryEvents: keep,
					History: func(tx *wal.Tx) error { hist = append(hist, tx.Revision); return nil },
					Tx:      func(tx *wal.Tx) error { txs = append(txs, tx.Revision); return nil }})
				require.NoError(t, err)
				require.NoError(t, l.Close())
				require.NotEmpty(t, txs)
				newest := txs[len(txs)-1]
				require.Less(t, newest, int64(last), "the damage cost records")
				kept := keptFrom(writes, newest, keep)
				first := firstGiven(t, hist, snap)
				require.Equal(t, min(kept, int64(snap+1)), first, "keep %d, replayed to %d", keep, newest)
			}
		})
	}
}

// keptFrom returns the oldest revision a history of keep events holds
// once the replay has given it every revision up to newest, each with
// writes(rev) events: the newest always, then older ones while they fit.
func keptFrom(writes func(int64) int, newest int64, keep int) int64 {
	kept, events := newest, writes(newest)
	for kept > 1 && events+writes(kept-1) <= keep {
		kept--
		events += writes(kept)
	}
	return kept
}

// firstGiven returns the first revision History was given (hist, which
// must run without a gap to the snapshot at snap), or snap+1 if none.
func firstGiven(t *testing.T, hist []int64, snap int64) int64 {
	t.Helper()
	if len(hist) == 0 {
		return snap + 1
	}
	require.Equal(t, seq(hist[0], snap), hist)
	return hist[0]
}

// readCounter is a MemFS that counts, for each file, the reads of it
// whole and the bytes read from it in pieces.
type readCounter struct {
	*vfs.MemFS
	mu    sync.Mutex
	whole map[string]int
	bytes map[string]int64
}

func (r *readCounter) ReadFile(name string) ([]byte, error) {
	r.mu.Lock()
	r.whole[name]++
	r.mu.Unlock()
	return r.MemFS.ReadFile(name)
}

func (r *readCounter) OpenRead(name string) (vfs.Reader, error) {
	f, err := r.MemFS.OpenRead(name)
	return countedReader{f, r, name}, err
}

type countedReader struct {
	vfs.Reader
	r    *readCounter
	name string
}

func (c countedReader) count(n int) {
	c.r.mu.Lock()
	c.r.bytes[c.name] += int64(n)
	c.r.mu.Unlock()
}

func (c countedReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.count(n)
	return n, err
}

func (c countedReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Reader.ReadAt(p, off)
	c.count(n)
	return n, err
}

// TestLog_HistoryCheckBesideSnapshot: the segments of history are checked
// while the snapshot loads; a damaged snapshot still fails Open with
// ErrCorrupt, whatever the check finds, and leaves no goroutine behind.
func TestLog_HistoryCheckBesideSnapshot(t *testing.T) {
	for _, damageHistory := range []bool{false, true} {
		fs := vfs.NewMemFS()
		o := wal.Options{FS: fs, SegmentSize: 200}
		l, err := wal.Open("db", &o, wal.Replay{})
		require.NoError(t, err)
		appendDurable(t, l, 1, 80)
		l.Retain(1)
		require.NoError(t, l.Snapshot(70, slices.Values(sampleItems(50))))
		require.NoError(t, l.Close())
		names, err := fs.List("db/snap")
		require.NoError(t, err)
		require.Len(t, names, 1)
		flipMiddle(t, fs, path.Join("db/snap", names[0]), 0x08)
		if damageHistory {
			segs, err := fs.List("db/wal")
			require.NoError(t, err)
			flipMiddle(t, fs, path.Join("db/wal", segs[0]), 0x08)
		}
		before := goleak.IgnoreCurrent()
		_, err = wal.Open("db", &o, wal.Replay{History: func(*wal.Tx) error { return nil }})
		require.ErrorIs(t, err, wal.ErrCorrupt, "history damaged too: %v", damageHistory)
		require.Contains(t, err.Error(), names[0])
		goleak.VerifyNone(t, before)
	}
}

// rewrite replaces the file name with what change makes of a copy of it.
func rewrite(t *testing.T, fs *vfs.MemFS, name string, change func([]byte) []byte) {
	t.Helper()
	b, err := fs.ReadFile(name)
	require.NoError(t, err)
	fs.WriteFile(name, change(slices.Clone(b)))
}

// flipMiddle flips the bits of mask in the middle byte of the file name.
func flipMiddle(t *testing.T, fs *vfs.MemFS, name string, mask byte) {
	t.Helper()
	b, err := fs.ReadFile(name)
	require.NoError(t, err)
	b = slices.Clone(b)
	b[len(b)/2] ^= mask
	fs.WriteFile(name, b)
}

// TestLog_ReplayBorrowed: with Replay.Borrow, History and Tx get the same
// transactions as without, each copied by the callee before the next
// comes, though one Tx is decoded again for each record.
func TestLog_ReplayBorrowed(t *testing.T) {
	txOf := func(rev int64) *wal.Tx {
		tx := &wal.Tx{Revision: rev, Time: rev}
		for i := range int(rev%4) + 1 {
			tx.Writes = append(tx.Writes, wal.Write{Kind: wal.KindPut, Key: fmt.Sprintf("k%d/%d", rev, i),
				Value: strings.Repeat(fmt.Sprint(rev), i), Expires: rev * int64(i), Created: i%2 == 0})
		}
		return tx
	}
	fs := vfs.NewMemFS()
	o := wal.Options{FS: fs, SegmentSize: 500}
	const snap, last = 150, 200
	writeRetained(t, &o, snap, last, txOf)

	deep := func(tx *wal.Tx) wal.Tx {
		c := *tx
		c.Writes = nil
		for _, w := range tx.Writes {
			w.Key, w.Value = strings.Clone(w.Key), strings.Clone(w.Value)
			c.Writes = append(c.Writes, w)
		}
		return c
	}
	open := func(borrow bool) (hist, txs []wal.Tx) {
		l, err := wal.Open("db", &o, wal.Replay{Borrow: borrow,
			History: func(tx *wal.Tx) error { hist = append(hist, deep(tx)); return nil },
			Tx:      func(tx *wal.Tx) error { txs = append(txs, deep(tx)); return nil }})
		require.NoError(t, err)
		require.NoError(t, l.Close())
		return hist, txs
	}
	hist, txs := open(false)
	require.Len(t, hist, snap)
	require.Len(t, txs, last-snap)
	for i, tx := range append(hist, txs...) {
		require.Equal(t, *txOf(int64(i + 1)), tx)
	}
	bhist, btxs := open(true)
	require.Equal(t, hist, bhist)
	require.Equal(t, txs, btxs)
}

// writeRetained writes the transactions txOf gives for revisions 1 to
// last into a new log of o, every one kept (Retain(1)), with a snapshot
// at snap.
func writeRetained(t *testing.T, o *wal.Options, snap, last int64, txOf func(int64) *wal.Tx) {
	t.Helper()
	l, err := wal.Open("db", o, wal.Replay{})
	require.NoError(t, err)
	for r := int64(1); r <= last; r++ {
		require.NoError(t, l.Append(txOf(r)))
		require.NoError(t, l.WaitDurable(r))
		if r == snap {
			l.Retain(1)
			require.NoError(t, l.Snapshot(snap, noItems))
		}
	}
	require.NoError(t, l.Close())
}

// TestHistoryCut: the cut that historyCut finds as records come in, while
// holding only those after it, is the one a count back from the newest
// record over all of them gives: the newest revision, short of the
// newest, with more than keep events from it on; and the record after it
// is where the history's reading starts again.
func TestHistoryCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 5))
	for round := range 2000 {
		events := make([]int, rng.IntN(60))
		for i := range events {
			events[i] = rng.IntN(4) // a record of no writes counts too
		}
		keep, resetAt := rng.IntN(40), 0
		if round%3 == 0 && len(events) > 0 {
			resetAt = rng.IntN(len(events))
		}
		const first = 1000
		cut, off := wal.HistoryCut(first, events, keep, resetAt)

		var want int64
		if keep > 0 {
			sum := 0
			for i := len(events) - 1; i >= resetAt && want == 0; i-- {
				sum += events[i]
				if i < len(events)-1 && sum > keep {
					want = first + int64(i)
				}
			}
		}
		what := fmt.Sprintf("events %v, keep %d, reset at %d", events, keep, resetAt)
		require.Equal(t, want, cut, what)
		if want == 0 {
			require.Zero(t, off, what)
		} else {
			require.Equal(t, 100*(want+1), off, what)
		}
	}
}

// killAtSnapSync is a MemFS on which the process is killed as it syncs
// the snapshot folder, while armed: that sync fails, as does every
// operation after it, until FailAt(0, false).
type killAtSnapSync struct {
	*vfs.MemFS
	armed bool
}

func (k *killAtSnapSync) SyncDir(dir string) error {
	if k.armed && dir == "db/snap" {
		k.FailAt(1, true)
	}
	return k.MemFS.SyncDir(dir)
}

// TestLog_KilledBeforeSnapshotFolderSync: a process killed after a new
// snapshot's rename, before its folder's sync, leaves the snapshot named
// in the OS alone. The next Open reads it, and drops damaged segments of
// history that it holds; a machine crash after that must not take the
// snapshot away with those segments gone, or the state before them is
// lost.
func TestLog_KilledBeforeSnapshotFolderSync(t *testing.T) {
	fs := &killAtSnapSync{MemFS: vfs.NewMemFS()}
	l, _, _, err := openHistory(t, fs, wal.Options{SegmentSize: 200})
	require.NoError(t, err)
	appendDurable(t, l, 1, 80)
	l.Retain(1)
	fs.armed = true
	require.ErrorIs(t, l.Snapshot(70, noItems), vfs.ErrInjected)
	l.Close() // killed: it does nothing more
	fs.armed = false
	fs.FailAt(0, false)
	names, err := fs.List("db/wal")
	require.NoError(t, err)
	flipMiddle(t, fs.MemFS, path.Join("db/wal", names[1]), 0x10)

	snap, revs, err := replayed(fs)
	require.NoError(t, err)
	require.Equal(t, int64(70), snap)
	require.Equal(t, seq(71, 80), revs)

	snap, revs, err = replayed(fs.Crash(0))
	require.NoError(t, err)
	require.Equal(t, seq(snap+1, 80), revs, "the state is whole: snapshot %d, then %v", snap, revs)
}
