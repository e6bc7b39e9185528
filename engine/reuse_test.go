package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/stretchr/testify/require"
)

// pinned counts the tree copies in use.
func pinned(db *DB) int {
	db.order.mu.Lock()
	defer db.order.mu.Unlock()
	n := 0
	for _, c := range db.order.gens {
		n += c
	}
	return n
}

// TestOrdered_EveryCopyUnpinned: every reader of a tree copy pins it while
// it reads and unpins it when done, however it ends; a copy left pinned
// would keep the entries removed since from ever being used again.
func TestOrdered_EveryCopyUnpinned(t *testing.T) {
	db, err := Open(t.TempDir(), WithChunks(&Options{SweepInterval: -1, HistoryEvents: 1}, 1<<10, 1<<10))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for i := range 200 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), fmt.Sprintf("%040d", i), nil)
		require.NoError(t, err)
	}
	require.Zero(t, pinned(db))

	require.NoError(t, db.View(func(tx *Tx) error {
		require.Equal(t, 1, pinned(db), "in a view")
		seq, err := tx.Range("", "", nil)
		require.NoError(t, err)
		for range seq {
			require.Equal(t, 1, pinned(db), "a view's range reads the view's copy")
			break
		}
		return nil
	}))
	require.Zero(t, pinned(db), "after a view")

	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	for range seq {
		require.Equal(t, 1, pinned(db), "in a range")
		break // ended early
	}
	require.Zero(t, pinned(db), "after a range ended early")

	_, err = db.Update(func(tx *Tx) error {
		seq, err := tx.Range("", "", nil)
		require.NoError(t, err)
		for range seq {
			require.Equal(t, 1, pinned(db), "in a write transaction's range")
			break
		}
		return nil
	})
	require.NoError(t, err)
	require.Zero(t, pinned(db), "after a write transaction's range")

	sub, err := db.Subscribe([]string{"k0*"}, &SubscribeOptions{Initial: true})
	require.NoError(t, err)
	require.Len(t, sub.Initial, 100)
	sub.Close()
	require.Zero(t, pinned(db), "after a subscription's initial items")

	var buf bytes.Buffer
	_, err = db.Backup(&buf)
	require.NoError(t, err)
	require.Zero(t, pinned(db), "after a backup")
	require.NoError(t, db.Checkpoint())
	require.Zero(t, pinned(db), "after a checkpoint")

	s := db.openSnapshot()
	require.Equal(t, 1, pinned(db), "with a replica's snapshot open")
	s.Close()
	s.Close()
	require.Zero(t, pinned(db), "after a replica's snapshot closed (twice)")

	// Deleting three keys in four leaves the chunks of 1 KiB mostly dead:
	// a compaction runs, over a copy of the tree.
	for i := range 200 {
		if i%4 != 0 {
			_, err := db.Delete(fmt.Sprintf("k%03d", i))
			require.NoError(t, err)
		}
	}
	waitCompaction(db)
	require.Positive(t, Compactions(db), ArenaStats(db))
	require.Zero(t, pinned(db), "after compactions")
}

// reused counts the entries used again for another key.
func reused(db *DB) int64 {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.entries.reused
}

// setAll sets key(i) to value(key(i)) for i in [0, n); delAll deletes them.
func setAll(t *testing.T, db *DB, n int, key func(int) string) {
	t.Helper()
	for i := range n {
		_, err := db.Set(key(i), "v:"+key(i), nil)
		require.NoError(t, err)
	}
}

func delAll(t *testing.T, db *DB, n int, key func(int) string) {
	t.Helper()
	for i := range n {
		_, err := db.Delete(key(i))
		require.NoError(t, err)
	}
}

// checkAll reads the whole store with Range and Get: exactly the keys of
// want, in order, each with its own value.
func checkAll(t *testing.T, db *DB, want []string) {
	t.Helper()
	seq, err := db.Range("", "", nil)
	require.NoError(t, err)
	var got []string
	for it, err := range seq {
		require.NoError(t, err)
		require.Equal(t, "v:"+it.Key, it.Value)
		got = append(got, it.Key)
	}
	slices.Sort(want)
	require.Equal(t, want, got)
	for _, k := range want {
		it, err := db.Get(k)
		require.NoError(t, err)
		require.Equal(t, k, it.Key)
		require.Equal(t, "v:"+k, it.Value)
	}
	require.NoError(t, ArenaErr(db))
}

func keysOf(n int, key func(int) string) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = key(i)
	}
	return ks
}

// TestEntries_ReusedOnlyWhenNothingReachesThem: the entries of deleted
// keys are used again for new keys, but not while a snapshot opened
// before the deletions may still reach them.
func TestEntries_ReusedOnlyWhenNothingReachesThem(t *testing.T) {
	require.True(t, poisonReclaimed, "tests run with reclaimed entries poisoned")
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	a := func(i int) string { return fmt.Sprintf("a%03d", i) }
	b := func(i int) string { return fmt.Sprintf("b%03d", i) }
	c := func(i int) string { return fmt.Sprintf("c%03d", i) }
	setAll(t, db, 100, a)
	s := db.openSnapshot()
	delAll(t, db, 100, a)
	setAll(t, db, 100, b)
	require.Zero(t, reused(db), "entries used again while a snapshot may reach them")
	n := 0
	for it := range snapshotItems(s.s.t, s.s.rev) {
		require.Equal(t, a(n), it.Key)
		require.Equal(t, "v:"+a(n), it.Value)
		n++
	}
	require.Equal(t, 100, n)
	s.Close()

	setAll(t, db, 100, c)
	require.Equal(t, int64(100), reused(db), "the deleted keys' entries, once the snapshot closed")
	checkAll(t, db, append(keysOf(100, b), keysOf(100, c)...))
}

// TestEntries_ReusedOnlyOnceOutOfTheBatch: an entry deleted while the
// batch of new keys may still hold it is used again only once that batch
// is in the tree (which skips it): a new key in it would otherwise go in
// under the old key's place.
func TestEntries_ReusedOnlyOnceOutOfTheBatch(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	x := func(i int) string { return fmt.Sprintf("x%03d", i) }
	y := func(i int) string { return fmt.Sprintf("a%03d", i) } // before x in order
	z := func(i int) string { return fmt.Sprintf("z%03d", i) }
	setAll(t, db, 100, x) // in the batch: nothing has read the tree
	delAll(t, db, 100, x)
	setAll(t, db, 100, y)
	require.Zero(t, reused(db), "entries used again while the batch holds them")
	checkAll(t, db, keysOf(100, y)) // the range puts the batch in the tree
	setAll(t, db, 100, z)
	require.Equal(t, int64(100), reused(db))
	checkAll(t, db, append(keysOf(100, y), keysOf(100, z)...))
}

// TestEntries_ReadersNeverSeeAnotherKey: while a writer deletes keys and
// creates others, so that entries are reclaimed and used again all the
// time, readers (Get, Range, views, replica snapshots, subscriptions'
// initial items) only ever see a key with a value written for it, and
// a view the same value twice.
func TestEntries_ReadersNeverSeeAnotherKey(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys, rounds = 300, 40
	// Round r holds keys k<i>.<r>; the next round deletes them and sets
	// k<i>.<r+1>, a new key, which takes a reclaimed entry.
	key := func(i, r int) string { return fmt.Sprintf("k%03d.%d", i, r) }
	check := func(it Item) error {
		if it.Value != "v:"+it.Key {
			return fmt.Errorf("key %q holds %q", it.Key, it.Value)
		}
		return nil
	}
	var round atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	readers := 0
	reader := func(read func(rng *rand.Rand) error) {
		readers++
		seed := uint64(readers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := read(rng); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	reader(func(rng *rand.Rand) error { // Get
		r := int(round.Load())
		k := key(rng.IntN(keys), r-rng.IntN(2))
		it, err := db.Get(k)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if it.Key != k {
			return fmt.Errorf("Get(%q) returned key %q", k, it.Key)
		}
		return check(it)
	})
	scanAll := func(seq func(func(Item, error) bool)) ([]Item, error) {
		var items []Item
		for it, err := range seq {
			if err != nil {
				return nil, err
			}
			if err := check(it); err != nil {
				return nil, err
			}
			if n := len(items); n > 0 && items[n-1].Key >= it.Key {
				return nil, fmt.Errorf("range: %q after %q", it.Key, items[n-1].Key)
			}
			items = append(items, it)
		}
		return items, nil
	}
	reader(func(*rand.Rand) error { // Range
		seq, err := db.Range("", "", nil)
		if err != nil {
			return err
		}
		_, err = scanAll(seq)
		return err
	})
	reader(func(*rand.Rand) error { // a view, read twice
		return db.View(func(tx *Tx) error {
			seq, err := tx.Range("", "", nil)
			if err != nil {
				return err
			}
			items, err := scanAll(seq)
			if err != nil {
				return err
			}
			for _, it := range items {
				again, err := tx.Get(it.Key)
				if err != nil {
					return fmt.Errorf("view: %q: %w", it.Key, err)
				}
				if again != it {
					return fmt.Errorf("view: %q read %+v, then %+v", it.Key, it, again)
				}
			}
			return nil
		})
	})
	reader(func(*rand.Rand) error { // a replica's snapshot, and initial items
		s := db.openSnapshot()
		defer s.Close()
		for it := range snapshotItems(s.s.t, s.s.rev) {
			if it.Value != "v:"+it.Key {
				return fmt.Errorf("snapshot: key %q holds %q", it.Key, it.Value)
			}
		}
		sub, err := db.Subscribe([]string{"k1*"}, &SubscribeOptions{Initial: true})
		if err != nil {
			return err
		}
		defer sub.Close()
		for _, it := range sub.Initial {
			if err := check(it); err != nil {
				return fmt.Errorf("initial: %w", err)
			}
		}
		return nil
	})

	for r := range rounds {
		for i := range keys {
			if r > 0 {
				_, err := db.Delete(key(i, r-1))
				require.NoError(t, err)
			}
			_, err := db.Set(key(i, r), "v:"+key(i, r), nil)
			require.NoError(t, err)
		}
		round.Store(int64(r))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Positive(t, reused(db), "no entry was used again")
	checkAll(t, db, keysOf(keys, func(i int) string { return key(i, rounds-1) }))
}

// TestEntries_SlabsFreedAfterTheStoreShrinks: once most keys are deleted,
// the entries kept to be used again are at most max(a slab, half the
// keys), and the collector frees the slabs that hold none of them.
func TestEntries_SlabsFreedAfterTheStoreShrinks(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 20000
	k := func(i int) string { return fmt.Sprintf("k%05d", i) }
	setAll(t, db, keys, k)
	checkAll(t, db, keysOf(keys, k)) // puts the batch of new keys in the tree
	weaks := make([]weak.Pointer[entry], keys)
	for i := range keys {
		weaks[i] = weak.Make(db.index.get(k(i)))
	}
	delAll(t, db, keys, k)
	setAll(t, db, 1, func(int) string { return "new" }) // reclaims the entries
	db.wmu.Lock()
	free := len(db.entries.free)
	db.wmu.Unlock()
	require.Equal(t, slabEntries-1, free, "entries kept to be used again, one of them used")
	runtime.GC()
	runtime.GC()
	gone := 0
	for _, w := range weaks {
		if w.Value() == nil {
			gone++
		}
	}
	// The entries kept are the first deleted, all in the first slab, which
	// stays, and so does the last, which new entries come from.
	require.GreaterOrEqual(t, gone, keys-slabEntries-keys%slabEntries, "entries freed of %d", keys)

	// The places of the slabs freed are taken again as the store grows
	// back (to fewer keys than the entries kept and those freed).
	slabs := len(*db.entries.tab.slabs.Load())
	m := func(i int) string { return fmt.Sprintf("m%05d", i) }
	setAll(t, db, keys-slabEntries, m)
	require.Equal(t, slabs, len(*db.entries.tab.slabs.Load()), "the table grew with freed places in it")
	checkAll(t, db, append(keysOf(keys-slabEntries, m), "new"))
}

// TestEntries_SlabGroupsUsedAgainAfterTheStoreShrinks: a store large
// enough for slabs in groups (places from 32 on) shrinks and grows back:
// a freed place whose group lives on gets its memory again, and every
// key reads back as written.
func TestEntries_SlabGroupsUsedAgainAfterTheStoreShrinks(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 40 * slabEntries // places 32 and on are in groups of 2
	k := func(i int) string { return fmt.Sprintf("k%06d", i) }
	setAll(t, db, keys, k)
	checkAll(t, db, keysOf(keys, k))
	tab := db.entries.tab
	before := slices.Clone(tab.load())
	// One key is kept, in the slab at place 33: the group {32, 33} lives.
	kept33 := -1
	for i := range keys {
		if kept33 < 0 && db.index.get(k(i)).id>>entrySlabBits == 33 {
			kept33 = i
			continue
		}
		_, err := db.Delete(k(i))
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, kept33, 0, "no key in the slab at place 33")
	setAll(t, db, 1, func(int) string { return "new" }) // reclaims the entries
	// The freed places whose group lives on.
	var kept []uint32
	now := tab.load()
	for p := uint32(32); int(p) < len(now); p++ {
		first, size := slabGroup(p)
		if now[p] != nil {
			continue
		}
		for q := first; q < first+size && int(q) < len(now); q++ {
			if now[q] != nil {
				kept = append(kept, p)
				break
			}
		}
	}
	var live []uint32
	for p, s := range now {
		if s != nil {
			live = append(live, uint32(p))
		}
	}
	require.NotEmpty(t, kept, "no freed place in a group that lives on; live: %v of %d", live, len(now))

	m := func(i int) string { return fmt.Sprintf("m%06d", i) }
	setAll(t, db, keys-slabEntries, m)
	now = tab.load()
	for _, p := range kept {
		require.True(t, now[p] == before[p], "place %d did not get its memory again", p)
	}
	checkAll(t, db, append(keysOf(keys-slabEntries, m), "new", k(kept33)))
}

// treePages returns how many pages db's tree holds in its blocks (in
// use, free or waiting for copies), and how many wait.
func treePages(db *DB) (held, waiting int) {
	db.order.mu.Lock()
	defer db.order.mu.Unlock()
	s := db.order.tree.store
	for _, b := range *s.blocks.Load() {
		if b != nil {
			held += pagesPerBlock
		}
	}
	return held, len(s.retired)
}

// TestOrdered_TreePagesLetGoWithoutNewKeys: the pages the tree writes
// anew because a copy (a range, a view) held them are used again once
// the copy is done, in a store that only gains keys, or only loses them,
// as much as in one that does both: no page waits for an entry to be
// reclaimed, which only a new key after a deletion does.
func TestOrdered_TreePagesLetGoWithoutNewKeys(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 20000 // some 80 pages, two blocks
	k := func(i int) string { return fmt.Sprintf("k%06d", i) }
	read := func() {
		seq, err := db.Range("", "", &RangeOptions{Limit: 1})
		require.NoError(t, err)
		for _, err := range seq {
			require.NoError(t, err)
		}
	}
	for i := range keys {
		setAll(t, db, 1, func(int) string { return k(i) })
		read() // each new key's page is one this read's copy holds
	}
	held, waiting := treePages(db)
	require.LessOrEqual(t, held, 4*pagesPerBlock, "pages held for %d keys, %d of them waiting", keys, waiting)
	for i := range keys - 1 {
		_, err := db.Delete(k(i))
		require.NoError(t, err)
		read()
	}
	held, waiting = treePages(db)
	require.LessOrEqual(t, held, 4*pagesPerBlock, "pages held for one key, %d of them waiting", waiting)
	checkAll(t, db, []string{k(keys - 1)})
}

// liveSlabs counts the slabs in db's table of entries.
func liveSlabs(db *DB) int {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	n := 0
	for _, s := range db.entries.tab.load() {
		if s != nil {
			n++
		}
	}
	return n
}

// TestEntries_ReclaimedWithoutNewKeys: the entries of deleted keys are
// reclaimed, and the slabs and the keys' bytes that none of them holds
// any more let go, in a store that only deletes keys, as in one that
// also makes new ones (which reclaim when they find none to use again).
func TestEntries_ReclaimedWithoutNewKeys(t *testing.T) {
	db, err := Open("", &Options{SweepInterval: -1, HistoryEvents: 1})
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	const keys = 10 * slabEntries // keys of 100 bytes: 4 MB in 16 chunks
	k := func(i int) string { return fmt.Sprintf("k%06d%093d", i, 0) }
	setAll(t, db, keys, k)
	checkAll(t, db, keysOf(keys, k)) // puts the batch of new keys in the tree
	slabs, chunks := liveSlabs(db), ArenaChunks(db)
	delAll(t, db, keys-1, func(i int) string { return k(i + 1) })
	checkAll(t, db, []string{k(0)})
	// Kept to be used again: a slab's worth, besides the slab of the key
	// left and the one new entries come from; and a slab's worth may
	// wait to be reclaimed.
	require.LessOrEqual(t, liveSlabs(db), 4, "slabs of %d in the table", slabs)
	require.Less(t, int(db.order.waiting.Load()), slabEntries, "entries waiting to be reclaimed")
	require.NoError(t, ArenaErr(db))
	require.Less(t, ArenaChunks(db), chunks/2, "chunks in use of %d", chunks)
}
