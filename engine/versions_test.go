package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// heads counts the entries that still hold a version object (head).
func heads(db *DB) int {
	n := 0
	for i := range db.index.shards {
		s := &db.index.shards[i]
		s.mu.RLock()
		s.t.each(func(id uint32) {
			if db.index.tab.head(db.index.tab.at(id)) != nil {
				n++
			}
		})
		s.mu.RUnlock()
	}
	return n
}

// TestVersions_KeptOnlyWhileNeeded checks that a key's newest version is
// kept as an object only while a snapshot reads below it: with none open,
// a visible value is its entry's visible copy alone; a snapshot opened
// before an overwrite still reads the value it saw, which exists by then
// only in that copy; once the snapshot closes, the next commit lets the
// kept versions go. Tombstones stay until their entries are buried.
func TestVersions_KeptOnlyWhileNeeded(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			var path string
			if dir != "" {
				path = t.TempDir()
			}
			db, err := Open(path, nil)
			require.NoError(t, err)
			defer func() { db.Close() }()

			const keys = 100
			key := func(i int) string { return fmt.Sprintf("k%03d", i) }
			for i := range keys {
				_, err := db.Set(key(i), "v1", nil)
				require.NoError(t, err)
			}
			require.Zero(t, heads(db), "no snapshot is open: every value is its visible copy alone")

			// A snapshot opened now reads "v1" after every key changes.
			s := db.openSnapshot()
			for i := range keys {
				_, err := db.Set(key(i), "v2", nil)
				require.NoError(t, err)
			}
			require.Equal(t, keys, heads(db), "the open snapshot reads below every new version")
			for i := range keys {
				v := s.db.index.get(key(i)).at(s.s.rev, s.db.entries.tab)
				require.Equal(t, "v1", v.value, key(i))
			}
			n := 0
			for it := range snapshotItems(s.s.t, s.s.rev) {
				require.Equal(t, "v1", it.Value, it.Key)
				n++
			}
			require.Equal(t, keys, n)
			s.Close()

			// The next commit lets the versions the snapshot kept go.
			_, err = db.Set("other", "x", nil)
			require.NoError(t, err)
			require.Zero(t, heads(db))
			for i := range keys {
				it, err := db.Get(key(i))
				require.NoError(t, err)
				require.Equal(t, "v2", it.Value)
				require.Equal(t, int64(2), it.Version)
			}

			// A deleted key keeps its tombstone until its entry is buried;
			// after that it is gone from the index altogether.
			_, err = db.Delete(key(0))
			require.NoError(t, err)
			_, err = db.Set("other", "y", nil) // a write buries what is visible
			require.NoError(t, err)
			require.Nil(t, db.index.get(key(0)))
			require.Zero(t, heads(db))

			if path == "" {
				return
			}
			// Recovery loads the visible copies alone, from the checkpoint
			// and from the log.
			require.NoError(t, db.Checkpoint())
			_, err = db.Set(key(1), "v3", nil)
			require.NoError(t, err)
			require.NoError(t, db.Close())
			db, err = Open(path, nil)
			require.NoError(t, err)
			require.Zero(t, heads(db))
			it, err := db.Get(key(1))
			require.NoError(t, err)
			require.Equal(t, "v3", it.Value)
			require.Equal(t, int64(3), it.Version)
		})
	}
}

// TestVersions_IdleSlabsLetTheirHeadsGo checks that a slab's array of
// heads goes once its heads have all been nil since the last visit, that
// one a snapshot still reads through is kept however often slabs are
// visited, and that a slab gets its heads back when a key of it is
// written again.
func TestVersions_IdleSlabsLetTheirHeadsGo(t *testing.T) {
	restAfter(t, time.Hour) // only the visits of this test
	db, err := Open("", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	tab := db.entries.tab
	visit := func() { // twice over every slab, as writes do in turn
		db.wmu.Lock()
		defer db.wmu.Unlock()
		tab.idleHeads(len(tab.load()))
		tab.idleHeads(len(tab.load()))
	}
	armed := func() (slabs []uint32) {
		for n, s := range tab.load() {
			if s != nil && tab.slabHeadsAt(uint32(n)).heads.Load() != nil {
				slabs = append(slabs, uint32(n))
			}
		}
		return slabs
	}

	const keys = 3 * entrySlabMax
	key := func(i int) string { return fmt.Sprintf("k%05d", i) }
	for i := range keys {
		_, err := db.Set(key(i), "v1", nil)
		require.NoError(t, err)
	}
	require.NotEmpty(t, armed(), "writes give their slabs heads")
	visit()
	require.Empty(t, armed(), "no snapshot is open: every slab lets its heads go")

	// The keys of one slab change under an open snapshot, which reads
	// "v1" through their heads.
	s := db.openSnapshot()
	slab, changed := setOneSlab(t, db, key, keys, "v2")
	for range 3 {
		visit()
		require.Equal(t, []uint32{slab}, armed(), "the slab a snapshot reads through keeps its heads")
	}
	for i := range keys {
		v := db.index.get(key(i)).at(s.s.rev, tab)
		require.Equal(t, "v1", v.value, key(i))
	}
	s.Close()

	// The next commit lets the kept versions go, and then the heads.
	_, err = db.Set(key(0), "v3", nil)
	require.NoError(t, err)
	require.Zero(t, heads(db))
	visit()
	require.Empty(t, armed())

	// A write gives its slab heads again, and a snapshot reads through
	// them.
	s = db.openSnapshot()
	defer s.Close()
	_, err = db.Set(changed[0], "v4", nil)
	require.NoError(t, err)
	require.Equal(t, []uint32{slab}, armed())
	require.Equal(t, "v2", db.index.get(changed[0]).at(s.s.rev, tab).value)
	it, err := db.Get(changed[0])
	require.NoError(t, err)
	require.Equal(t, "v4", it.Value)
}

// setOneSlab sets to v those of the first n keys whose entries are in
// the slab of key(entrySlabMax+5), the second slab's when they were set
// in order; it returns the slab and the keys.
func setOneSlab(t *testing.T, db *DB, key func(int) string, n int, v string) (slab uint32, changed []string) {
	slab = db.index.get(key(entrySlabMax+5)).id >> entrySlabBits
	for i := range n {
		if db.index.get(key(i)).id>>entrySlabBits == slab {
			_, err := db.Set(key(i), v, nil)
			require.NoError(t, err)
			changed = append(changed, key(i))
		}
	}
	require.Greater(t, len(changed), entrySlabMax/2)
	return slab, changed
}

// restAfter sets headsRestAfter, for the DBs opened until the test ends.
func restAfter(t *testing.T, d time.Duration) {
	old := headsRestAfter
	headsRestAfter = d
	t.Cleanup(func() { headsRestAfter = old })
}

// TestVersions_HeadsGoOnceWritesRest checks that once writes stop, the
// visit at rest lets go the tables of heads that the writes' own visits
// leave (every 1,024 heads set, a few slabs), in memory and on disk, and
// that it keeps the table of a slab a snapshot reads through.
func TestVersions_HeadsGoOnceWritesRest(t *testing.T) {
	restAfter(t, 100*time.Millisecond)
	for _, dir := range []string{"", t.TempDir()} {
		db, err := Open(dir, &Options{SweepInterval: -1})
		require.NoError(t, err)
		db.wmu.Lock()
		timer := db.rest.timer
		db.wmu.Unlock()
		require.Nil(t, timer, "a store not written arms nothing")
		tab := db.entries.tab
		tables := func() (slabs []uint32) {
			tab.mu.Lock()
			defer tab.mu.Unlock()
			for n, s := range tab.load() {
				if s != nil && tab.slabHeadsAt(uint32(n)).heads.Load() != nil {
					slabs = append(slabs, uint32(n))
				}
			}
			return slabs
		}
		key := func(i int) string { return fmt.Sprintf("k%05d", i) }
		const keys = 3 * entrySlabMax
		for i := range keys {
			_, err := db.Set(key(i), "v1", nil)
			require.NoError(t, err)
		}
		require.NotEmpty(t, tables(), "the last writes leave their slabs tables of heads")
		require.Zero(t, heads(db))
		require.Eventually(t, func() bool { return len(tables()) == 0 }, 5*time.Second, time.Millisecond,
			"the visit at rest lets the idle tables go")

		// The keys of one slab change under an open snapshot, which reads
		// "v1" through their heads.
		s := db.openSnapshot()
		slab, changed := setOneSlab(t, db, key, keys, "v2")
		time.Sleep(500 * time.Millisecond) // several visits
		require.Equal(t, []uint32{slab}, tables(), "the slab a snapshot reads through keeps its table")
		db.wmu.Lock()
		armed := tab.restArmed
		db.wmu.Unlock()
		require.True(t, armed, "a visit that kept a table for a head still set looks again")
		for _, k := range changed {
			require.Equal(t, "v1", db.index.get(k).at(s.s.rev, tab).value, k)
		}
		s.Close()
		_, err = db.Set(key(keys-1), "v3", nil) // the next commit lets the kept versions go
		require.NoError(t, err)
		require.Zero(t, heads(db))
		require.Eventually(t, func() bool { return len(tables()) == 0 }, 5*time.Second, time.Millisecond)
		it, err := db.Get(changed[0])
		require.NoError(t, err)
		require.Equal(t, "v2", it.Value)
		require.NoError(t, db.Close())
	}
}

// restState reports how many slabs of db hold a table of heads, and
// whether the visit at rest is armed.
func restState(db *DB) (tables int, armed bool) {
	tab := db.entries.tab
	tab.mu.Lock()
	for i, s := range tab.load() {
		if s != nil && tab.slabHeadsAt(uint32(i)).heads.Load() != nil {
			tables++
		}
	}
	tab.mu.Unlock()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return tables, tab.restArmed
}

// open100 opens a DB in memory, closed when the test ends, that holds
// the keys k000 to k099, each "v".
func open100(t *testing.T) *DB {
	t.Helper()
	db, err := Open("", &Options{SweepInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	for i := range 100 {
		_, err := db.Set(fmt.Sprintf("k%03d", i), "v", nil)
		require.NoError(t, err)
	}
	return db
}

// TestVersions_HeadsGoAtRestAfterADelete: a deletion's tombstone, the
// head of its entry, goes once no snapshot reads below it, and with it
// its slab's table, when the deletion is the last write: it used to stay
// until the entry was used again for a new key, which a store that only
// deletes never makes, and the visit at rest, finding a head still set,
// armed itself every period for good.
func TestVersions_HeadsGoAtRestAfterADelete(t *testing.T) {
	const period = 50 * time.Millisecond
	restAfter(t, period)
	db := open100(t)
	require.Eventually(t, func() bool { n, armed := restState(db); return n == 0 && !armed }, 2*time.Second, time.Millisecond,
		"after sets alone, the tables go and the visit stops")

	// A view begun before the deletions still reads the keys after they
	// are buried: the tombstones stay for it.
	began, deleted := make(chan struct{}), make(chan struct{})
	read := make(chan []string, 1)
	viewed := make(chan struct{})
	go func() {
		defer close(viewed)
		_ = db.View(func(tx *Tx) error {
			close(began)
			<-deleted
			var vs []string
			for _, k := range []string{"k007", "k008"} {
				it, err := tx.Get(k)
				vs = append(vs, fmt.Sprint(it.Value, err))
			}
			read <- vs
			return nil
		})
	}()
	<-began
	_, err := db.Delete("k007")
	require.NoError(t, err)
	_, err = db.Delete("k008")
	require.NoError(t, err)
	require.Equal(t, 2, Held(db), "the tombstones, which the view reads below")
	close(deleted)
	require.Equal(t, []string{"v<nil>", "v<nil>"}, <-read)
	<-viewed

	_, err = db.Delete("k009") // the last write
	require.NoError(t, err)
	require.Zero(t, pinned(db))
	time.Sleep(20 * period)
	n, armed := restState(db)
	require.Zero(t, n, "twenty periods after the last write, a table of heads stays (a buried key's tombstone)")
	require.False(t, armed, "twenty periods after the last write, the visit at rest still arms itself")
	require.Zero(t, Held(db))
}

// TestVersions_HeadsGoAtRestAfterASnapshotCloses: a version kept for a
// snapshot goes, with its slab's table, once the snapshot closes, when
// no commit comes after: it went only in release, on the next publish,
// and the visit at rest armed itself every period for good.
func TestVersions_HeadsGoAtRestAfterASnapshotCloses(t *testing.T) {
	const period = 50 * time.Millisecond
	restAfter(t, period)
	db := open100(t)
	s := db.openSnapshot()
	_, err := db.Set("k007", "w", nil) // the last write, kept for s
	require.NoError(t, err)
	require.Equal(t, 1, Held(db))
	s.Close()
	time.Sleep(20 * period)
	require.Zero(t, Held(db), "the version kept for the closed snapshot is still held")
	n, armed := restState(db)
	require.Zero(t, n, "twenty periods after the last write and the snapshot's close, a table of heads stays")
	require.False(t, armed, "twenty periods after the last write and the snapshot's close, the visit at rest still arms itself")
}

// fullSlab returns a new entry table and the entries of its first slab.
func fullSlab() (*entryTable, []*entry) {
	tab := newEntryTable()
	es := newEntries(tab)
	var slab []*entry
	for range slabEntries {
		slab = append(slab, es.take())
	}
	return tab, slab
}

// TestHeads_Table runs a slab's table of heads against a map: heads set,
// replaced and taken back to nil at random places of one slab, tables
// regrown and let go by visits, while other goroutines drop heads as
// releases do. A head set must be found until it is dropped, and a
// dropped one never again; a table stays sized for the heads it holds.
func TestHeads_Table(t *testing.T) {
	for seed := range uint64(8) {
		tab, slab := fullSlab()
		s := tab.slabHeads(slab[0].id)
		r := rand.New(rand.NewPCG(seed, 3))
		model := map[*entry]*version{}
		// Heads that other goroutines drop, each once its version is set.
		drops := make(chan struct {
			e *entry
			v *version
		}, 64)
		var wg sync.WaitGroup
		var wmu sync.Mutex // DB.wmu: setHead and idleHeads hold it
		var pending atomic.Int64
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range drops {
					tab.dropHead(d.e, d.v)
					pending.Add(-1)
				}
			}()
		}
		var dropped []struct {
			e *entry
			v *version
		}
		for step := range 20_000 {
			e := slab[r.IntN(len(slab))]
			if r.IntN(4) == 0 {
				e = slab[r.IntN(64)] // a few places often
			}
			wmu.Lock()
			switch op := r.IntN(10); {
			case op < 6:
				v := &version{rev: int64(step + 1)}
				tab.setHead(e, v)
				model[e] = v
				if r.IntN(2) == 0 {
					delete(model, e) // dropped, now or soon
					dropped = append(dropped, struct {
						e *entry
						v *version
					}{e, v})
					pending.Add(1)
					drops <- dropped[len(dropped)-1]
				}
			case op < 8:
				tab.setHead(e, nil) // a rollback to no head
				delete(model, e)
			default:
				tab.idleHeads(1)
			}
			wmu.Unlock()
			if step%500 == 0 {
				for pending.Load() > 0 {
					runtime.Gosched()
				}
				for _, e := range slab {
					require.Same(t, model[e], tab.head(e), "seed %d step %d: place %d", seed, step, e.place())
				}
			}
		}
		close(drops)
		wg.Wait()
		for _, e := range slab {
			require.Same(t, model[e], tab.head(e), "seed %d: place %d", seed, e.place())
		}
		// Every head but the model's was dropped: a table regrown now
		// holds the model's alone, at most half full.
		if h := s.heads.Load(); h != nil {
			wmu.Lock()
			h = tab.regrow(s, h)
			wmu.Unlock()
			require.Equal(t, len(model), int(s.used))
			require.LessOrEqual(t, 2*(len(model)+1), int(h.slots()))
		}
		// With every head nil, two visits let the table go.
		for e := range model {
			tab.setHead(e, nil)
		}
		tab.idleHeads(1)
		tab.idleHeads(1)
		require.Nil(t, s.heads.Load())
	}
}

// TestHeads_TableReusesIdleSlots: a slab whose keys are written one after
// another, each head let go before the next is set, keeps one small
// table, with no head or with a few held throughout: a slot whose head
// is nil goes to the next place, so the table neither fills with places
// that have no head nor is made again.
func TestHeads_TableReusesIdleSlots(t *testing.T) {
	for _, c := range []struct{ held, slots int }{{0, 4}, {7, 16}} {
		held := c.held
		tab, slab := fullSlab()
		s := tab.slabHeads(slab[0].id)
		for _, e := range slab[:held] {
			tab.setHead(e, &version{rev: 1})
		}
		first := s.heads.Load()
		for round := range 3 {
			for i, e := range slab[held:] {
				v := &version{rev: int64(round*slabEntries + i + 2)}
				tab.setHead(e, v)
				require.Same(t, v, tab.head(e))
				if first == nil {
					first = s.heads.Load()
				}
				tab.dropHead(e, v)
				require.Nil(t, tab.head(e))
			}
		}
		require.Same(t, first, s.heads.Load(), "held %d: the table was made again", held)
		require.Equal(t, uint32(c.slots), first.slots(), "held %d", held)
		require.Equal(t, int32(held+1), s.used)
		for _, e := range slab[:held] {
			require.NotNil(t, tab.head(e))
		}
	}
}
